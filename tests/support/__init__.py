"""Helpers shared by the test folders (on ``sys.path`` through pytest's ``pythonpath``).

- ``buildkit``: the loaded build of a hot module and its pure-Python twin;
- ``enginekit``: engines wired by hand on a virtual clock (no sockets);
- ``nodekit``: real-socket node settings and ``until`` (wait for a condition);
- ``wait``: ``wait_for``, the same wait from synchronous code;
- ``loops``: a fresh asyncio or uvloop loop per test (``conftest.py``'s fixtures);
- ``netns``: network namespaces for the real-process partition tests;
- ``runproc``: ``gossipfast run`` child processes and their JSON output.
"""
