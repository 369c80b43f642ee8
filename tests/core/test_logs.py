"""Native output is captured at the file descriptors, so edgecn's own output stays clean."""

import ctypes
import os
import sys

from edgecn.logs import native_output_to, tail


def test_fd_writes_go_to_the_log_and_the_terminal_gets_them_back(tmp_path, capfd):
    log = tmp_path / "x.log"
    with native_output_to(log):
        os.write(1, b"from fd 1\n")
        os.write(2, b"from fd 2\n")
        print("from python")
        print("from python stderr", file=sys.stderr)
        ctypes.CDLL(None).puts(b"from libc")
    print("after")
    out, err = capfd.readouterr()
    assert "after" in out and "from" not in out + err
    text = log.read_text()
    for line in ("from fd 1", "from fd 2", "from python", "from python stderr", "from libc"):
        assert line in text
    assert tail(log, 1) and tail(tmp_path / "missing.log") == ""


def test_a_logging_handler_made_during_the_capture_writes_to_stderr_afterwards(tmp_path, capfd):
    """A library's logging.basicConfig inside the capture bound its handler to the capture file,
    which is closed on exit: later messages failed with "I/O operation on closed file"."""
    import logging

    logger = logging.getLogger("edgecn-test-capture")
    logger.propagate = False
    try:
        with native_output_to(tmp_path / "x.log"):
            handler = logging.StreamHandler()  # takes the sys.stderr of this moment: the capture
            logger.addHandler(handler)
            logger.warning("inside")
        logger.warning("outside")
        _, err = capfd.readouterr()
        assert "outside" in err and "closed file" not in err
        assert "inside" in (tmp_path / "x.log").read_text()
    finally:
        logger.handlers.clear()
