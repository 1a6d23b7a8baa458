"""Plain record classes, for the sentry's start-up path instead of `dataclasses`.

Importing dataclasses costs ~6 ms (it pulls in inspect, ast, dis, tokenize) and every
@dataclass generates and compiles its methods while its module imports, 0.3-1 ms a class:
together they were a tenth of `pysentry run -- /bin/true`. A record class here writes its
own `__init__` (the one method on a hot path) and names its fields in `_fields`, in
constructor order; equality, repr and, for a FrozenRecord, immutability and hashing follow
from `_fields` the way dataclass(eq=True[, frozen=True]) defines them: equal only to an
instance of the very same class with equal fields.
"""


class Record:
    __slots__ = ()
    _fields: tuple = ()

    def _values(self) -> tuple:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None     # mutable and compared by value: unhashable, as a dataclass is

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({inner})"


class FrozenRecord(Record):
    """Fields are set once, in __init__, through `object.__setattr__`."""
    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r} of a frozen record")

    def __delattr__(self, name):
        raise AttributeError(f"cannot delete field {name!r} of a frozen record")

    def __hash__(self) -> int:
        return hash(self._values())
