"""The grammar for strings torch evaluates from a .pt2 (compressor/trust/pt2_schema.py): the forms
torch prints pass, anything that could reach code or blow up sympy is refused."""

from __future__ import annotations

import pytest
import sympy

from compressor.trust.pt2_schema import SchemaRefusal, _check_guards, check_expression

S0 = sympy.Symbol("s0", positive=True, integer=True)
S1 = sympy.Symbol("s53", positive=True, integer=True)


def _torch_prints(expr: sympy.Expr) -> str:
    """What torch.export.save writes for a symbolic size (serialize._print_sympy)."""
    return sympy.srepr(expr)


@pytest.mark.parametrize(
    "text",
    [
        _torch_prints(S0),
        _torch_prints(2 * S0 + 1),
        _torch_prints(S0 * S1 * 12),
        _torch_prints(sympy.Max(S0, S1)),
        _torch_prints(sympy.Min(S0, 3)),
        "FloorDiv(Symbol('s0', positive=True, integer=True), Integer(2))",
        "Mod(s0, 3) + PythonMod(s1, 2) - CeilDiv(s2, 4)",
        "Float('0.5', precision=53)",
        "s0 // 2 + s1 % 3 - 1",
    ],
)
def test_symbolic_sizes_torch_writes_pass(text):
    check_expression(text)


@pytest.mark.parametrize(
    "text",
    [
        "s0 + 0*__import__('os').system('id')",
        "Symbol('s0').__class__.__mro__",
        "(lambda: 1)()",
        "Pow(Integer(10), Integer(100000000))",
        "s0 ** 99999999",
        "[c for c in ()]",
        "Symbol('s0\\'); import os #')",
        "Symbol(chr(115))",
        "eval('1')",
        "s0 + 10**100",
        "s0 + " + "1 + " * 2000 + "1",
        "(" * 5000 + "s0" + ")" * 5000,
        "f'{s0}'",
        "(x := 1)",
    ],
)
def test_anything_else_is_refused(text):
    with pytest.raises(SchemaRefusal):
        check_expression(text)


@pytest.mark.parametrize(
    ("guard", "ok"),
    [
        ("((-1) + L['x'].size()[0]) == L['y'].size()[0]", True),
        ("2*L['y'].size()[0] + 1 == L['x'].size()[0] and L['x'].stride()[0] >= 1", True),
        ("max(L['args'][0].size()[1], 2) <= 64", True),
        ("__import__('os').system('id') or True", False),
        ("L['x'].size()[0] == 1 or L['x\"'].size()[0]", False),  # breaks torch's message string
        ("L['x'].__class__()[0] == 1", False),
        ("L['x'].size(0) == 1", False),
        ("torch.ones(1)[0] == 1", False),
        ("L['x'].size()[0] == 'a'", False),
    ],
)
def test_guards_must_be_plain_size_comparisons(guard, ok):
    if ok:
        _check_guards([guard], "guards_code")
    else:
        with pytest.raises(SchemaRefusal):
            _check_guards([guard], "guards_code")


def test_non_finite_floats_are_the_only_strings_a_float_field_takes() -> None:
    """torch writes -inf (an attention mask's fill) as the string '-Infinity' in model.json."""
    from compressor.trust.pt2_schema import SchemaRefusal, _check_scalar

    for text in ("Infinity", "-Infinity", "NaN"):
        _check_scalar(float, text, "arg.as_float")
    for text in ("inf", "1e999", "__import__('os')", "Infinity "):
        with pytest.raises(SchemaRefusal):
            _check_scalar(float, text, "arg.as_float")
