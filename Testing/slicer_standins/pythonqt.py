"""The ``qt`` module of 3D Slicer's Python (PythonQt) over PySide6, for tests: real Qt widgets, Qt's own event loop.

Slicer's scripted modules reach Qt through PythonQt, which differs from PySide6 in what the module file relies on:

* a Qt property is a Python attribute, read and written as one (``button.enabled = False``, ``label.text``,
  ``bar.maximum = 0``), and it wins over a getter of the same name (``label.text`` is a string, not a method);
  ``name`` is the object's name;
* a signal is connected by its C++ signature: ``button.connect("clicked(bool)", slot)``, ``disconnect`` likewise;
  VTK objects travel as VTK pointers (``vtkMRMLScene*``), here as Python objects (``PyObject``);
* ``qt.QUiLoader`` builds every widget of a ``.ui`` file as such an object, Slicer's custom widgets included.

This module gives the same behaviour: every ``QObject`` class taken from it (``qt.QTimer``, ``qt.QPushButton``...)
is a subclass of PySide6's class with its Qt properties as Python properties and the PythonQt ``connect``; other
names (``qt.QUrl``, ``qt.Qt``, ``qt.QDesktopServices``) are PySide6's own. It is put in ``sys.modules`` as ``qt``
by :func:`slicer_standins.slicer_application` only, inside the test process.

Every slot connected through ``connect`` runs under :data:`HANDLER_CLOCK`, which records the main thread's CPU
time of each outermost handler (what the user waits for while Slicer does not repaint).
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

QT_MODULES = (QtCore, QtGui, QtWidgets, QtUiTools)

VTK_POINTER = re.compile(r"\bvtk\w*\s*\*")
"""A VTK pointer type in a C++ signature: PythonQt passes VTK objects, PySide6 passes them as ``PyObject``."""

NOT_ATTRIBUTES = frozenset({"sizeHint", "minimumSizeHint"})
"""Qt properties left as methods: Qt calls these getters as virtual functions, and PySide looks up an override by
name, so a Python attribute of that name would call itself."""


def pyside_signature(signature: str) -> str:
    """A PythonQt signature as PySide6 declares it: VTK pointers become ``PyObject``, spaces go."""
    return VTK_POINTER.sub("PyObject", signature).replace(" ", "")


class CollectorClock:
    """The main thread's CPU time spent in Python's cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        """Start counting."""
        self.seconds = 0.0
        self._started: float | None = None
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, _info: dict) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            self._started = time.thread_time()
        elif self._started is not None:
            self.seconds += time.thread_time() - self._started
            self._started = None


@dataclass
class HandlerClock:
    """The main thread's CPU time (``time.thread_time``) of every outermost Qt handler, by handler name, without
    the garbage collector's pauses inside it, which are counted apart (``collector_times``).

    A collection pass walks every object of the process: in a test process that holds many tests' data it can take
    100 ms whichever handler happens to trigger it, so it says nothing of the handler's own work. A handler called
    from inside another (a signal emitted by a slot) counts in the outer one. ``after_handler`` callbacks run after
    each outermost handler: a test looks at the panel there, as a user between two events.
    """

    times: list[tuple[str, float]] = field(default_factory=list)
    collector_times: list[tuple[str, float]] = field(default_factory=list)
    after_handler: list[Callable[[], None]] = field(default_factory=list)
    _depth: int = 0
    _collector: CollectorClock = field(default_factory=CollectorClock)

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` timed as the handler ``name``, with the same number of arguments as PySide6 passes it."""
        accepted = _positional_count(function)

        def handler(*arguments: Any) -> Any:
            return self.measure(name, function, *arguments[:accepted])

        return handler

    def measure(self, name: str, function: Callable[..., Any], *arguments: Any) -> Any:
        """Call ``function`` as a handler: timed when it is the outermost one, then the ``after_handler`` hooks."""
        if self._depth:
            return function(*arguments)
        self._depth += 1
        start, collecting = time.thread_time(), self._collector.seconds
        try:
            return function(*arguments)
        finally:
            collected = self._collector.seconds - collecting
            self.times.append((name, time.thread_time() - start - collected))
            if collected:
                self.collector_times.append((name, collected))
            self._depth -= 1
            for hook in list(self.after_handler):
                hook()

    def longest_by_handler(self) -> dict[str, float]:
        """Each handler's longest call (s)."""
        longest: dict[str, float] = {}
        for name, seconds in self.times:
            longest[name] = max(seconds, longest.get(name, 0.0))
        return longest


def _positional_count(function: Callable[..., Any]) -> int | None:
    """How many of a signal's arguments a slot takes (None: all of them), as PythonQt calls a slot that takes fewer."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for parameter in parameters if parameter.kind in positional)


HANDLER_CLOCK = HandlerClock()
"""The clock of every slot connected with PythonQt's ``connect`` in this process."""


def _handler_name(slot: Callable[..., Any]) -> str:
    return getattr(slot, "__qualname__", None) or repr(slot)


class PythonQtObject:
    """What PythonQt adds to every ``QObject``: ``name``, and signals connected by their C++ signature.

    PySide6 finds its own ``QObject.connect`` before a mixin's in a subclass that declares signals, so every
    subclass gets ``connect`` and ``disconnect`` in its own namespace."""

    def __init_subclass__(cls, **options: Any) -> None:
        """Keep PythonQt's ``connect``/``disconnect`` first in every subclass."""
        super().__init_subclass__(**options)
        cls.connect = PythonQtObject.connect  # type: ignore[method-assign]
        cls.disconnect = PythonQtObject.disconnect  # type: ignore[method-assign]

    @property
    def name(self) -> str:
        """The object's name (PythonQt's ``name``: Qt's ``objectName``)."""
        return QtCore.QObject.objectName(self)  # type: ignore[arg-type]

    @name.setter
    def name(self, value: str) -> None:
        QtCore.QObject.setObjectName(self, value)  # type: ignore[arg-type]

    def _signal(self, signature: str) -> Any:
        """The PySide6 signal instance of a C++ signature such as ``clicked(bool)``."""
        normalized = pyside_signature(signature)
        signal_name, _, arguments = normalized.partition("(")
        signal = getattr(self, signal_name)
        arguments = arguments.rstrip(")")
        return signal[arguments] if arguments else signal

    def connect(self, signature: str, slot: Callable[..., Any]) -> bool:
        """Connect the signal ``signature`` (``"clicked(bool)"``) to ``slot``, timed by :data:`HANDLER_CLOCK`."""
        timed = HANDLER_CLOCK.timed(_handler_name(slot), slot)
        self.__dict__.setdefault("_pythonqt_slots", {})[(signature, slot)] = timed
        self._signal(signature).connect(timed)
        return True

    def disconnect(self, signature: str, slot: Callable[..., Any]) -> bool:
        """Undo :meth:`connect`."""
        timed = self.__dict__.get("_pythonqt_slots", {}).pop((signature, slot), None)
        if timed is None:
            return False
        return bool(self._signal(signature).disconnect(timed))


class _QtProperty:
    """A Qt property as a Python attribute of instances. Read on the class, a name that is also one of the class's
    functions gives the function, as PythonQt does: ``qt.QTimer.singleShot(ms, callable)`` is the static function,
    ``timer.singleShot = True`` the property."""

    def __init__(self, name: str, class_function: Any) -> None:
        self.name = name
        self.class_function = class_function
        self.__doc__ = f"The Qt property ``{name}``."

    def __get__(self, instance: QtCore.QObject | None, owner: type) -> Any:
        if instance is None:
            return self.class_function if self.class_function is not None else self
        return QtCore.QObject.property(instance, self.name)

    def __set__(self, instance: QtCore.QObject, value: Any) -> None:
        if not QtCore.QObject.setProperty(instance, self.name, value):
            meta = instance.metaObject()
            if meta.indexOfProperty(self.name) >= 0:
                raise AttributeError(f"{type(instance).__name__}.{self.name} could not be set to {value!r}")


def _qt_property(base: type, name: str) -> _QtProperty:
    """The attribute of Qt property ``name`` of ``base``, keeping a function of that name for class access."""
    function = getattr(base, name, None)
    return _QtProperty(name, function if callable(function) else None)


_FLAVOURED: dict[type, type] = {}


def pythonqt_class(base: type) -> type:
    """``base`` (a PySide6 ``QObject`` class) as PythonQt shows it: Qt properties as attributes, PythonQt's connect."""
    if base in _FLAVOURED:
        return _FLAVOURED[base]
    meta = base.staticMetaObject  # type: ignore[attr-defined]
    names = {meta.property(index).name() for index in range(meta.propertyCount())}
    attributes: dict[str, Any] = {name: _qt_property(base, name) for name in sorted(names - NOT_ATTRIBUTES)}
    if hasattr(base, "exec"):
        attributes["exec_"] = base.exec  # PythonQt's name (PySide6 deprecates its own exec_)
    attributes["__module__"] = "qt"
    attributes["__doc__"] = f"PySide6's {base.__name__} as PythonQt shows it."
    flavoured = type(base.__name__, (PythonQtObject, base), attributes)
    _FLAVOURED[base] = flavoured
    return flavoured


def __getattr__(name: str) -> Any:
    """``qt.<Name>``: PySide6's class of that name, as PythonQt shows it when it is a ``QObject``."""
    for module in QT_MODULES:
        value = getattr(module, name, None)
        if value is None:
            continue
        if isinstance(value, type) and issubclass(value, QtCore.QObject) and name != "QUiLoader":
            return pythonqt_class(value)
        return value
    raise AttributeError(f"module 'qt' has no attribute {name!r}")


CUSTOM_WIDGETS: list[type] = []
"""Slicer's custom widget classes (stand-ins) that :class:`QUiLoader` builds, as Slicer's designer plugins do."""


class QUiLoader(QtUiTools.QUiLoader):
    """Qt's ``.ui`` loader building PythonQt-style widgets: standard classes from this module, Slicer's custom
    widgets from :data:`CUSTOM_WIDGETS` (registered with ``registerCustomWidget``); connections in the file that
    name VTK pointers (``mrmlSceneChanged(vtkMRMLScene*)``) are made with ``PyObject``, as the stand-ins declare them."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        """A loader that knows the registered custom widgets."""
        super().__init__(parent)
        for widget_class in CUSTOM_WIDGETS:
            self.registerCustomWidget(widget_class)

    def createWidget(self, class_name: str, parent: QtWidgets.QWidget | None = None, name: str = "") -> Any:
        """A standard widget as PythonQt shows it; a custom one as registered."""
        standard = getattr(QtWidgets, class_name, None)
        if isinstance(standard, type) and issubclass(standard, QtWidgets.QWidget):
            widget = pythonqt_class(standard)(parent)
            widget.setObjectName(name)
            return widget
        return super().createWidget(class_name, parent, name)

    def load(self, device: Any, parent: QtWidgets.QWidget | None = None) -> Any:
        """Load a ``.ui`` file (an open ``QFile``), its VTK-pointer connections made with ``PyObject``."""
        text = bytes(device.readAll().data()).decode("utf-8")
        text = re.sub(r"<(signal|slot)>([^<]*)</\1>",
                      lambda match: f"<{match[1]}>{pyside_signature(match[2])}</{match[1]}>", text)
        buffer = QtCore.QBuffer()
        buffer.setData(QtCore.QByteArray(text.encode("utf-8")))
        buffer.open(QtCore.QIODevice.OpenModeFlag.ReadOnly)
        previous = QtCore.qInstallMessageHandler(_without_unread_sets)
        try:
            return super().load(buffer, parent)
        finally:
            QtCore.qInstallMessageHandler(previous)


UNREAD_SET = re.compile(r"The set-type property (filters|options) could not be read")
"""What the loader says of ``ctkPathLineEdit``'s browse-dialog flags, which the stand-in does not declare."""


def _without_unread_sets(kind: Any, context: Any, message: str) -> None:
    """Qt's messages while loading, except :data:`UNREAD_SET`, to stderr as Qt writes them."""
    if not UNREAD_SET.search(message):
        import sys

        sys.stderr.write(message + "\n")
