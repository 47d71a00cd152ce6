"""Schedules: the working-day calendar, the dispatch policy, the weekly rota builder
and the APScheduler jobs that drive the week.

May import `dispatch` and `media`; never `logs` or `web`.
"""
