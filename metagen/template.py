"""Chat templates from a model file, rendered in a sandbox with bounds on time, size and depth.

A GGUF's tokenizer.chat_template is Jinja written by whoever made the file. jinja2's
ImmutableSandboxedEnvironment stops it reaching Python's internals, but not from running
for ever (nested loops), taking gigabytes ('x' * 10**10, '%999999999s' % 1, a string
doubled in a loop) or recursing without end. BoundedSandbox adds, for each render:
- a deadline, checked on every loop item, call, filter, operator and attribute access;
- a size limit on every value made and on the output, checked before the operations
  that can grow a value at once (`*`, `**`, `%`, padding widths, replace) and after the rest;
- a limit on all the characters made in one render, so many values within the size limit
  cannot add up to gigabytes;
- a limit on nested calls (macros calling macros, recursive loops).
Loops and printed values are guarded by rewriting the template's syntax tree: each
`for` iterates through BOUNDED_ITER, each printed value and `~` passes through BOUNDED_VALUE.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping

from jinja2 import TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

MAX_SECONDS = 2.0  # one render; a real chat template takes milliseconds
MAX_CHARS = 4 * 2**20  # any one value, and the rendered prompt
MAX_MADE = 32 * 2**20  # characters made in all during one render
MAX_DEPTH = 32  # calls inside calls
MAX_INT_BITS = 4096  # integers a template computes
MAX_SOURCE_CHARS = 256 * 1024  # the template itself
BOUNDED_ITER, BOUNDED_VALUE = "__metagen_iter", "__metagen_value"

_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*?:[^{}]*?(\d{7,})")  # a width or precision of a million or more
_PADDED = {"center", "ljust", "rjust", "zfill"}


class TemplateLimit(TemplateError):
    """A chat template went past a bound (time, size, depth)."""


def size_of(value, limit: int = MAX_CHARS) -> int:
    """Characters a value stands for once printed, counted until past limit (shared parts each time)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += 1
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)  # noqa: SLF001 - the only way to its values
    return total


class _Guard(NodeTransformer):
    """Route every loop through BOUNDED_ITER and every printed or `~`-joined value through BOUNDED_VALUE."""

    @staticmethod
    def _wrap(name: str, node: nodes.Node) -> nodes.Call:
        return nodes.Call(nodes.Name(name, "load"), [node], [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = self._wrap(BOUNDED_ITER, node.iter)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [n if isinstance(n, nodes.TemplateData) else self._wrap(BOUNDED_VALUE, n) for n in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        return self._wrap(BOUNDED_VALUE, self.generic_visit(node))


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with a deadline and limits on size, total work and depth (see above)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options):
        super().__init__(**options)
        self.deadline, self.made, self.depth = float("inf"), 0, 0
        self.filters = {name: self._bounded(f) for name, f in self.filters.items()}
        self.tests = {name: self._bounded(f) for name, f in self.tests.items()}
        self.globals[BOUNDED_ITER] = self._iterate
        self.globals[BOUNDED_VALUE] = self._made

    def compile_bounded(self, source: str):
        """The template with every loop and printed value guarded; TemplateError if it does not parse."""
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateLimit(f"the template is {len(source):,} characters, over {MAX_SOURCE_CHARS:,}")
        return self.from_string(_Guard().visit(self.parse(source)))

    def render_bounded(self, template, **context) -> str:
        """Render within MAX_SECONDS, MAX_CHARS of output and MAX_MADE characters made."""
        self.deadline, self.made, self.depth = time.monotonic() + MAX_SECONDS, 0, 0
        out, length = [], 0
        for piece in template.generate(**context):
            length += len(piece)
            if length > MAX_CHARS:
                raise TemplateLimit(f"the rendered prompt is over {MAX_CHARS:,} characters")
            out.append(piece)
        return "".join(out)

    # a. the checks
    def _tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took more than {MAX_SECONDS:g} s (a loop without end?)")

    def _made(self, value):
        self._tick()
        size = size_of(value)
        if size > MAX_CHARS:
            raise TemplateLimit(f"a value grew past {MAX_CHARS:,} characters")
        self.made += size
        if self.made > MAX_MADE:
            raise TemplateLimit(f"the template made more than {MAX_MADE:,} characters")
        return value

    def _iterate(self, iterable):
        for item in iterable:
            self._tick()
            yield item

    @staticmethod
    def _refuse_growth(name: str, target, args: tuple) -> None:
        """Refuse before the one-step growths: padding widths, replace, % and format widths."""
        if not isinstance(target, str):
            return
        first = args[0] if args else None
        if name in _PADDED or name == "indent":
            width = len(first) if isinstance(first, str) else first
            lines = target.count("\n") + 1 if name == "indent" else 1
            if isinstance(width, int) and width * lines > MAX_CHARS:
                raise TemplateLimit(f"{name}({width}) would make over {MAX_CHARS:,} characters")
        elif name == "replace" and len(args) >= 2 and isinstance(first, str) and isinstance(args[1], str):
            count = target.count(first) if first else len(target) + 1
            if len(target) + count * len(args[1]) > MAX_CHARS:
                raise TemplateLimit(f"replace() would make over {MAX_CHARS:,} characters")
        elif name in ("format", "format_map", "%"):
            widths = [int(n) for m in _PERCENT_WIDTH.finditer(target) for n in m.groups() if n and n.isdigit()]
            if any(w > MAX_CHARS for w in widths) or _BRACE_WIDTH.search(target):
                raise TemplateLimit(f"a format width over {MAX_CHARS:,}")

    # b. the sandbox's hooks
    def _bounded(self, function):
        @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
        def bounded(*args, **kwargs):
            self._tick()
            strings = [a for a in args if isinstance(a, str)]
            if strings:
                self._refuse_growth(function.__name__.removeprefix("do_"), strings[0], args[args.index(strings[0]) + 1:])
            return self._made(function(*args, **kwargs))

        return bounded

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's own signature
        __self._tick()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        if isinstance(getattr(method, "__self__", None), str):
            __self._refuse_growth(method.__name__, method.__self__, args)
        __self.depth += 1
        try:
            if __self.depth > MAX_DEPTH:
                raise TemplateLimit(f"calls nest more than {MAX_DEPTH} deep (a macro that calls itself?)")
            return __self._made(super().call(__context, __obj, *args, **kwargs))
        finally:
            __self.depth -= 1

    def call_binop(self, context, operator: str, left, right):
        self._tick()
        whole = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
        if operator == "%":
            self._refuse_growth("%", left, ())
        elif operator == "**" and len(whole) == 2 and abs(left) > 1 and left.bit_length() * abs(right) > MAX_INT_BITS:
            raise TemplateLimit(f"a number of more than {MAX_INT_BITS} bits")
        elif operator == "*" and len(whole) == 2 and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"a number of more than {MAX_INT_BITS} bits")
        elif operator == "*" and len(whole) == 1 and not isinstance(left if whole[0] is right else right, float):
            times, repeated = (right, left) if whole[0] is right else (left, right)
            if times > 0 and size_of(repeated) * times > MAX_CHARS:
                raise TemplateLimit(f"repeating a value {times:,} times would make over {MAX_CHARS:,} characters")
        return self._made(super().call_binop(context, operator, left, right))

    def getattr(self, obj, attribute):
        self._tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        self._tick()
        return super().getitem(obj, argument)


def template_line(error: BaseException) -> int | None:
    """The template line an error was raised at (jinja rewrites tracebacks onto the template)."""
    line = getattr(error, "lineno", None)
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def template_reason(error: BaseException) -> str:
    """What went wrong in a chat template as a plain phrase, without Python's class names
    ("division by zero", not "ZeroDivisionError: division by zero")."""
    text = " ".join(str(error).split())[:200]
    if isinstance(error, TemplateError):
        return text or "it raised an error without a message"
    if isinstance(error, KeyError) and error.args:  # '{a}'.format(): str() is only the key's repr
        return f"no value for the key {error.args[0]!r}"
    if isinstance(error, OverflowError):  # 2.0 ** 10000: "(34, 'Numerical result out of range')"
        return "a number too large to compute"
    if isinstance(error, RecursionError):
        return "calls nest too deeply"
    if isinstance(error, MemoryError):
        return "it ran out of memory"
    return text or "its code failed without saying why"
