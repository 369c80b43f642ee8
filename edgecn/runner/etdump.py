"""Per-op timings from an ETDump, read without ExecuTorch's Python devtools (which need torch).

An ETDump is a size-prefixed flatbuffer (schema ``etdump_schema_flatcc.fbs``, identifier "ED00"):
``ETDump{version, run_data: [RunData{name, bundled_input_index, allocators, events: [Event]}]}``,
``Event{profile_event, allocation_event, debug_event}``, and
``ProfileEvent{name, chain_index, instruction_id, delegate_debug_id_int, delegate_debug_id_str,
delegate_debug_metadata, start_time, end_time}``. Times are the runtime's ticks, nanoseconds on
Linux. Only profile events are read: operator calls outside a delegate are named by the runtime
(``native_call_index_select.out``), calls inside XNNPACK by the delegate (``Convolution (NHWC, QC8)``).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from edgecn.errors import EdgecnError
from edgecn.runner.spec import _field, _string, _tables, _u32

WRAPPERS = ("Method::execute", "Program::load_method", "Method::init", "DELEGATE_CALL", "OPERATOR_CALL")
"""Events that span others (a delegate call spans its XNNPACK operators, an operator call its
kernel); counting them would count every op twice."""


def op_type(name: str) -> str:
    """XNNPACK numbers each instance of an operator ("Convolution (NHWC, QC8) IGEMM #12"); the
    table groups by type, as benchmark_model's summary by node type does."""
    return re.sub(r" #\d+$", "", name)


def profile_events(data: bytes) -> list[tuple[str, int]]:
    """``(name, duration in ticks)`` of every profile event, in the order recorded."""
    if len(data) < 12 or bytes(data[8:12]) != b"ED00":
        raise EdgecnError("the ETDump the native runner wrote is not an ETDump (no 'ED00' identifier)",
                          "rebuild the native runner: python -m edgecn.runner.native --force")
    b = memoryview(data)[4:]  # size-prefixed: a u32 length, then the flatbuffer
    try:
        root = _u32(b, 0)
        runs = _field(b, root, 1)
        events = []
        for run in _tables(b, runs) if runs is not None else ():
            listed = _field(b, run, 3)
            for event in _tables(b, listed) if listed is not None else ():
                profile = _field(b, event, 0)
                if profile is None:
                    continue
                p = profile + _u32(b, profile)  # the field holds an offset to the table
                name_at, debug_at = _field(b, p, 0), _field(b, p, 4)
                name = (_string(b, name_at) if name_at is not None
                        else _string(b, debug_at) if debug_at is not None else "(unnamed)")
                start, end = _field(b, p, 6), _field(b, p, 7)
                if start is None or end is None:
                    continue
                events.append((name, struct.unpack_from("<Q", b, end)[0] - struct.unpack_from("<Q", b, start)[0]))
        return events
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise EdgecnError(f"the ETDump is damaged ({type(e).__name__})", "profile again") from None


def op_profile(path: Path, runs: int, source: str) -> dict:
    """The runner's per-op table (ops by total time per run) from the ETDump at ``path``."""
    from edgecn.runner.onnxrt import _summary

    per_op: dict[str, list[float]] = {}
    for name, ticks in profile_events(Path(path).read_bytes()):
        if name not in WRAPPERS:
            per_op.setdefault(op_type(name), []).append(ticks / 1e6)  # ns -> ms
    return _summary(per_op, runs, source)
