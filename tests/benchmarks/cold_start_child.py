"""What one cold start does, run by ``bench_cold_start`` in a fresh ``python -I -S``.

Usage: ``python -I -S cold_start_child.py WHAT EVENT_FILE PATH...`` where WHAT is ``bare``
(nothing), ``boto3`` (``import boto3``), ``libraries`` (import the third-party modules named,
comma-separated, in EVENT_FILE's place) or a handler name (import the handlers module, which
builds the container from the environment, then serve the event in EVENT_FILE, ``-`` for
none); ``loaded-by:<handler>`` serves the handler the same way and also lists the third-party
modules the process loaded (``loaded``, comma-separated; not timed, so only the discovery
run pays for it). The PATHs are put first on ``sys.path`` (the Lambda package's folders).
Prints one JSON line: milliseconds since the child's first line for the import and for the
first event. Exit status 3 when the handler did not answer 200.
"""

import sys
import time

started = time.perf_counter()
what, event_file = sys.argv[1:3]
list_loaded = what.startswith("loaded-by:")
what = what.removeprefix("loaded-by:")
sys.path[0:0] = sys.argv[3:]

if what == "bare":
    imported = served = time.perf_counter()
elif what == "boto3":
    import boto3  # noqa: F401

    imported = served = time.perf_counter()
elif what == "libraries":
    import importlib

    for name in event_file.split(","):
        importlib.import_module(name)
    imported = served = time.perf_counter()
else:
    import json

    from entrypoints.aws_lambda import handlers

    imported = time.perf_counter()
    with open(event_file, encoding="utf-8") as handle:
        event = json.load(handle)
    response = getattr(handlers, what)(event, None)
    served = time.perf_counter()
    if response.get("statusCode") != 200:
        print(json.dumps({"error": response}), file=sys.stderr)
        sys.exit(3)

import_ms = (imported - started) * 1000
first_event_ms = (served - imported) * 1000
figures = f'"importMs": {import_ms:.3f}, "firstEventMs": {first_event_ms:.3f}'
if list_loaded:
    ours = {"adapters", "application", "domain", "entrypoints"}
    loaded = sorted(
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in ours
        and name != "__main__"
        and getattr(module, "__spec__", None) is not None
        and getattr(module.__spec__, "origin", None) not in (None, "built-in", "frozen")
    )
    figures += f', "loaded": "{",".join(loaded)}"'
print("{" + figures + "}", file=sys.stderr)
