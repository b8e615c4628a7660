"""With JSON logs, whatever a process of the server writes is a JSON line: a library's print,
a traceback printed by hand, a warning, an exception a thread or the main code did not catch
(``llmgw_kernel.logs.stdio_as_events``, used by the dashboards' child process)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import threading, traceback, warnings
    from llmgw_kernel.logs import configure, stdio_as_events

    assert configure("info", "json", process="panel") == "json"
    stdio_as_events()
    print("a library's print")
    try:
        1 / 0
    except ZeroDivisionError:
        traceback.print_exc()
    warnings.warn("a library's warning")
    thread = threading.Thread(target=lambda: {}["missing"], name="page")
    thread.start()
    thread.join()
    raise RuntimeError("the end")
    """
)


def _events(fmt: str) -> tuple[list[str], list[dict]]:
    code = CHILD.replace('"json"', repr(fmt))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    events = []
    for line in lines:
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return lines, events


def test_every_line_a_json_process_writes_is_one_json_event() -> None:
    lines, events = _events("json")
    assert len(events) == len(lines), [line for line in lines if not line.startswith("{")]
    assert all({"ts", "level", "logger", "event"} <= set(e) and e["process"] == "panel" for e in events), events
    by_logger = {e["logger"]: e for e in events}
    assert by_logger["stdout"]["event"] == "a library's print"
    assert any(e["logger"] == "stderr" and "ZeroDivisionError" in e["event"] for e in events)
    assert "a library's warning" in by_logger["py.warnings"]["event"]
    crashes = [e for e in events if e["logger"] == "llmgw.uncaught"]
    assert [c["level"] for c in crashes] == ["error", "error"]
    assert "thread page" in crashes[0]["event"] and "KeyError" in crashes[0]["exception"]
    assert "RuntimeError: the end" in crashes[1]["exception"]


def test_text_lines_name_the_child_process() -> None:
    lines, events = _events("text")
    assert not events
    assert any(" llmgw.uncaught[panel]: uncaught RuntimeError: the end" in line for line in lines), lines
