"""Domain core: centres and their hierarchy, accounts and roles, calls and the
attendance events they emit, configuration and the database engine.

May import `media`; must never import `schedules`, `logs` or `web`.
"""
