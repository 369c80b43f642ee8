"""The native runner's build key: its code, not its comments.

The key names the binary, and a cost table's runtime fingerprint names the binary, so a key that moved
with a comment would rebuild the runner and drop every ``.pte`` segment time measured with it.
"""

from __future__ import annotations

import pytest

from edgecn.runner import native

PROGRAM = b'''// the runner
#include <cstdio>

/* a block
   comment */ int  main() {
    std::printf("a  //b\\n");   // a trailing comment
    char q = '"';  char s = '\\\\';
\treturn q == s;
}
'''


def test_comments_blanks_and_empty_lines_do_not_change_the_code():
    edited = (PROGRAM.replace(b"// the runner", b"// the runner, reworded\n\n// with a second line")
              .replace(b"int  main", b"int main").replace(b"\treturn", b"        return")
              .replace(b"// a trailing comment", b"/* another */"))
    assert native.code_of(edited) == native.code_of(PROGRAM)
    code = native.code_of(PROGRAM).decode()
    assert "comment" not in code and "runner" not in code
    assert '"a  //b\\n"' in code  # a literal is kept byte for byte, // and blanks in it included
    assert "char q = '\"'; char s = '\\\\';" in code


@pytest.mark.parametrize("change", [(b'"a  //b', b'"a //b'), (b"q == s", b"q != s"), (b"int  main", b"long main")])
def test_any_change_to_the_code_changes_it(change):
    assert native.code_of(PROGRAM.replace(*change)) != native.code_of(PROGRAM)


def test_the_binary_keeps_its_name_when_a_comment_of_the_runner_changes(monkeypatch):
    if native.executorch_root() is None:
        pytest.skip("no executorch libraries here to key a build on")
    real = native.source()
    name = native.expected_binary().name
    monkeypatch.setattr(native, "source", lambda: b"// reworded\n" + real.replace(b"\n// ", b"\n// note: "))
    assert native.expected_binary().name == name
    monkeypatch.setattr(native, "source", lambda: real.replace(b"return 3;", b"return 4;", 1))
    assert native.expected_binary().name != name
