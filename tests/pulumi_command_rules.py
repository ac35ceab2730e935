"""pulumi-command v1.2.1's failed-command error text, computed independently of the offline
provider (toolchain/offline/command_provider.py), for tests that model it.

pulumi/pulumi-command provider/pkg/provider/remote/commandOutputs.go (*CommandOutputs).run:
    fmt.Errorf("%w: running %q:\\n%s", err, cmd, stdouterrbuf.String())
whatever `logging` says; err is golang.org/x/crypto/ssh's *ExitError (session.go
Waitmsg.String: "Process exited with status %v"). stdouterrbuf gets stdout and stderr as
they arrive.
"""

from __future__ import annotations

import unicodedata


def go_quote(s: str) -> str:
    """strconv.Quote (fmt %q), written from its documentation: \\a \\b \\f \\n \\r \\t \\v \\\\ \\"
    escapes; unicode.IsPrint runes (categories L, M, N, P, S and the ASCII space) as is;
    others as \\xNN below 0x80, else \\uNNNN or \\UNNNNNNNN (lower-case hex)."""
    named = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 0x22: '\\"', 0x5C: "\\\\"}
    parts = []
    for ch in s:
        code = ord(ch)
        if code in named:
            parts.append(named[code])
        elif ch == " " or unicodedata.category(ch)[0] in "LMNPS":
            parts.append(ch)
        elif code < 0x80:
            parts.append("\\x%02x" % code)
        elif code <= 0xFFFF:
            parts.append("\\u%04x" % code)
        else:
            parts.append("\\U%08x" % code)
    return '"' + "".join(parts) + '"'


def failed_command_error(status: int, command: str, combined_output: str) -> str:
    """The step's error for a command that exited with `status` (not 0)."""
    return f"Process exited with status {status}: running {go_quote(command)}:\n{combined_output}"
