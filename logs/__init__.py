"""Logs: the dispatch journal (调度日志), issues and their escalation, sealing,
and the reports built from journals.

May import `schedules`, `dispatch` and `media`; never `web`.
"""
