"""The operator's command line, ``vmkeeper`` (click + rich): status, plan, points, restore, report.

``main`` holds the commands (thin); ``context`` turns options, a settings file and a credential into a
``Wiring``; ``preview`` is the read-only plan; ``api_client`` speaks to the restore HTTP API; ``output``
renders for people (rich) or machines (JSON). Nothing heavy is imported until a command needs it.
"""
