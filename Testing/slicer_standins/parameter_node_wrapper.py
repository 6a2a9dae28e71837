"""Stand-in for ``slicer.parameterNodeWrapper``: typed attributes stored in a ``vtkMRMLScriptedModuleNode``.

Behaves, for the types the module declares, as Slicer's own package does in 5.10.0 and 5.12.3
(``Base/Python/slicer/parameterNodeWrapper/wrapper.py``, ``serializers.py``, ``validators.py``, ``default.py``,
``guiConnectors.py``, ``util.py``):

* ``@parameterNodeWrapper`` turns each annotated class attribute into a property of the wrapper, whose
  ``__init__(parameterNode)`` writes every missing default; the default is the class attribute's value, else the
  ``Default`` annotation, else the type's (``False``, ``""``, ``[]``, None for nodes);
* values live in the node as Slicer writes them: ``bool`` as ``"True"``/``"False"``, ``str`` as itself, numbers as
  text, ``list[T]`` as ``name.len`` and ``name.0``..., a node as an empty parameter ``name`` plus the node
  reference ``name``, a ``Union`` of several types as ``name.<index of the member type>`` (None as the parameter
  ``"True"``); a write that changes several parameters fires one ``ModifiedEvent`` (``NodeModify``);
* writes are validated: nodes by class (None allowed), other values not None and of their type, ``Choice``;
* ``connectGui(gui)`` binds every widget (of a widget, or the attributes of ``childWidgetVariables``) whose dynamic
  property ``SlicerParameterName`` names a parameter: a ``qMRMLNodeComboBox`` to a node or union of nodes (its
  ``nodeTypes`` become those classes), a ``QComboBox`` to a ``Choice`` (its items become the choices); the widget
  shows the value now and after every ``ModifiedEvent``, and the user's change is written. It returns a tag for
  ``disconnectGui(tag)``, which drops the bindings and, as 5.12.3 does, the ``ModifiedEvent`` observer (5.10.0
  kept it, updating no widget);
* ``AddObserver``/``RemoveObserver``/``Modified``/``StartModify``/``EndModify`` go to the node.

Differences that the module does not meet: values are read from the node on every access (Slicer caches them and
refreshes the cache on each ``ModifiedEvent``: the same values once events have fired); a list read is a plain
list (Slicer's ``ObservedList`` writes in-place changes back); parameter packs, enums, paths, colours, ranges and
the other widget kinds are not supported (a wrapper or binding that needs them raises, as Slicer's does for a type
it cannot serialize).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import slicer
import vtk

UNIONS = (typing.Union, types.UnionType)
"""``Union[A, B]`` and ``A | B``."""

SLICER_PARAMETER_NAME = "SlicerParameterName"
"""The dynamic property that names a widget's parameter (``SlicerParameterNamePropertyName``)."""


class Default:
    """The default value of a parameter (``Default(value)`` or ``Default(generator=f)``)."""

    def __init__(self, value: Any = None, *, generator: Callable[[], Any] | None = None) -> None:
        """A fixed default, or one made by ``generator`` each time."""
        self._value = value
        self._generator = generator

    @property
    def value(self) -> Any:
        """The default value."""
        return self._generator() if self._generator is not None else self._value


class Choice:
    """A parameter that takes one of ``choices``."""

    def __init__(self, choices: Any) -> None:
        """The allowed values."""
        self.choices = choices

    def validate(self, value: Any) -> None:
        """Refuse a value not among the choices."""
        if value not in self.choices:
            raise ValueError(f"Value is {value}, but must be in one of the following: {self.choices}")


@dataclass(frozen=True)
class _Codec:
    """How one type is stored: ``write``/``read``/``isIn``/``remove`` under a name, a type check, a default."""

    write: Callable[[Any, str, Any], None]
    read: Callable[[Any, str], Any]
    is_in: Callable[[Any, str], bool]
    remove: Callable[[Any, str], None]
    accepts: Callable[[Any], bool]
    default: Any


def _scalar(kind: type) -> _Codec:
    if kind is bool:
        def write(node: Any, name: str, value: Any) -> None:
            node.SetParameter(name, "True" if value else "False")

        def read(node: Any, name: str) -> Any:
            return node.GetParameter(name) == "True"
    else:
        def write(node: Any, name: str, value: Any) -> None:
            node.SetParameter(name, str(value))

        def read(node: Any, name: str) -> Any:
            return kind(node.GetParameter(name))

    number = (int, float) if kind is float else kind
    return _Codec(write, read, lambda node, name: bool(node.HasParameter(name)),
                  lambda node, name: node.UnsetParameter(name), lambda value: isinstance(value, number), kind())


def _node(kind: type) -> _Codec:
    def write(node: Any, name: str, value: Any) -> None:
        node.SetParameter(name, "")
        node.SetNodeReferenceID(name, value.GetID() if value is not None else None)

    def remove(node: Any, name: str) -> None:
        node.UnsetParameter(name)
        node.RemoveNodeReferenceIDs(name)

    return _Codec(write, lambda node, name: node.GetNodeReference(name),
                  lambda node, name: bool(node.HasParameter(name)), remove,
                  lambda value: value is None or isinstance(value, kind), None)


_NONE = _Codec(lambda node, name, value: node.SetParameter(name, "True"), lambda node, name: None,
               lambda node, name: bool(node.HasParameter(name)), lambda node, name: node.UnsetParameter(name),
               lambda value: value is None, None)


def _list(element: _Codec) -> _Codec:
    def length(node: Any, name: str) -> int:
        return int(node.GetParameter(f"{name}.len")) if node.HasParameter(f"{name}.len") else 0

    def write(node: Any, name: str, values: Any) -> None:
        values = list(values)
        with slicer.util.NodeModify(node):
            old = length(node, name)
            for index, value in enumerate(values):
                element.write(node, f"{name}.{index}", value)
            node.SetParameter(f"{name}.len", str(len(values)))
            for index in range(len(values), old):
                element.remove(node, f"{name}.{index}")

    def remove(node: Any, name: str) -> None:
        with slicer.util.NodeModify(node):
            for index in range(length(node, name)):
                element.remove(node, f"{name}.{index}")
            node.UnsetParameter(f"{name}.len")

    return _Codec(write, lambda node, name: [element.read(node, f"{name}.{i}") for i in range(length(node, name))],
                  lambda node, name: bool(node.HasParameter(f"{name}.len")), remove,
                  lambda values: values is not None and all(element.accepts(value) for value in values), [])


def _union(members: list[_Codec]) -> _Codec:
    def member_of(value: Any) -> int:
        for index, member in enumerate(members):
            if member.accepts(value):
                return index
        raise TypeError(f"Unable to write value '{value}' of type '{type(value)}'")

    def remove(node: Any, name: str) -> None:
        with slicer.util.NodeModify(node):
            for index, member in enumerate(members):
                member.remove(node, f"{name}.{index}")

    def write(node: Any, name: str, value: Any) -> None:
        index = member_of(value)
        with slicer.util.NodeModify(node):
            remove(node, name)
            members[index].write(node, f"{name}.{index}", value)

    def read(node: Any, name: str) -> Any:
        for index, member in enumerate(members):
            if member.is_in(node, f"{name}.{index}"):
                return member.read(node, f"{name}.{index}")
        return None

    def is_in(node: Any, name: str) -> bool:
        return any(member.is_in(node, f"{name}.{index}") for index, member in enumerate(members))

    def accepts(value: Any) -> bool:
        return any(member.accepts(value) for member in members)

    optional = len(members) == 2 and members[1] is _NONE
    return _Codec(write, read, is_in, remove, accepts, None if optional else members[0].default)


def _codec(kind: Any) -> _Codec:
    """The codec of a (not annotated) type, as Slicer's serializer of that type stores it."""
    if kind is type(None):
        return _NONE
    if typing.get_origin(kind) in UNIONS:
        return _union([_codec(member) for member in typing.get_args(kind)])
    if typing.get_origin(kind) is list:
        return _list(_codec(typing.get_args(kind)[0]))
    if isinstance(kind, type) and issubclass(kind, slicer.vtkMRMLNode):
        return _node(kind)
    if kind in (bool, str, int, float):
        return _scalar(kind)
    raise TypeError(f"the stand-in parameterNodeWrapper cannot store {kind}")


def _node_classes(kind: Any) -> list[type]:
    """The node classes of a node type or a union of node types (and None)."""
    members = typing.get_args(kind) if typing.get_origin(kind) in UNIONS else (kind,)
    return [member for member in members if isinstance(member, type) and issubclass(member, slicer.vtkMRMLNode)]


@dataclass(frozen=True)
class _Parameter:
    """One declared parameter: its name, type (annotations split off), codec, default and choices."""

    name: str
    kind: Any
    codec: _Codec
    default: Default
    choice: Choice | None

    def validate(self, value: Any) -> None:
        if not self.codec.accepts(value):
            raise TypeError(f"Value must be of type '{self.kind}', is type '{type(value)}' value '{value}'")
        if self.choice is not None:
            self.choice.validate(value)


def _parameters_of(cls: type) -> dict[str, _Parameter]:
    parameters = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        kind, annotations = hint, ()
        if typing.get_origin(hint) is typing.Annotated:
            kind, *rest = typing.get_args(hint)
            annotations = tuple(rest)
        codec = _codec(kind)
        defaults = [annotation for annotation in annotations if isinstance(annotation, Default)]
        choices = [annotation for annotation in annotations if isinstance(annotation, Choice)]
        assigned = [Default(cls.__dict__[name])] if name in cls.__dict__ else []  # ``name: T = value``
        default = (assigned or defaults or [Default(codec.default)])[0]
        parameters[name] = _Parameter(name, kind, codec, default, choices[0] if choices else None)
    return parameters


class _Binding:
    """One widget bound to one parameter: show a value, and call back on the user's change."""

    def __init__(self, widget: Any, parameter: _Parameter) -> None:
        import qt

        self.widget = widget
        if type(widget) is slicer.qMRMLNodeComboBox and _node_classes(parameter.kind):
            widget.nodeTypes = [node_class.__name__ for node_class in _node_classes(parameter.kind)]
            self.signal = widget.currentNodeChanged
            self.read: Callable[[], Any] = widget.currentNode
            self.show: Callable[[Any], None] = widget.setCurrentNode
        elif type(widget) is qt.QComboBox and parameter.choice is not None:
            choices = list(parameter.choice.choices)
            widget.clear()
            for choice in choices:
                widget.addItem(str(choice))
            self.signal = widget.currentIndexChanged
            self.read = lambda: choices[widget.currentIndex]
            self.show = lambda value: setattr(widget, "currentIndex", choices.index(value))
        else:
            raise RuntimeError(f"Unable to create GUI connector from datatype '{parameter.kind}' to widget type "
                               f"'{type(widget)}'")
        self._callback: Callable[[], None] | None = None

    def on_change(self, callback: Callable[[], None] | None) -> None:
        if self._callback is not None:
            self.signal.disconnect(self._callback)
        self._callback = callback
        if callback is not None:
            self.signal.connect(callback)


def parameterNodeWrapper(cls: type | None = None) -> Any:
    """Class decorator: typed attributes stored in the wrapped ``vtkMRMLScriptedModuleNode`` (see the module's
    docstring)."""
    if cls is None:
        return parameterNodeWrapper
    parameters = _parameters_of(cls)
    for name in parameters:
        setattr(cls, name, property(lambda self, n=name: self.getValue(n),
                                    lambda self, value, n=name: self.setValue(n, value)))
    cls.allParameters = parameters  # type: ignore[attr-defined]
    cls._is_parameter_node_wrapper = True  # type: ignore[attr-defined]
    for member in _Wrapper.__dict__:
        if not member.startswith("__") or member == "__init__":
            setattr(cls, member, _Wrapper.__dict__[member])
    return cls


class _Wrapper:
    """The methods every wrapper class gets."""

    def __init__(self, parameterNode: Any) -> None:
        self.parameterNode = parameterNode
        self._bindings: dict[int, dict[str, _Binding]] = {}
        self._binding_observers: dict[int, int] = {}
        self._next_tag = 0
        self._updating_gui = False
        with slicer.util.NodeModify(parameterNode):
            for parameter in self.allParameters.values():  # type: ignore[attr-defined]
                if not parameter.codec.is_in(parameterNode, parameter.name):
                    parameter.codec.write(parameterNode, parameter.name, parameter.default.value)

    def getValue(self, name: str) -> Any:
        """The value of parameter ``name``."""
        parameter = self.allParameters[name]  # type: ignore[attr-defined]
        if not parameter.codec.is_in(self.parameterNode, name):
            parameter.codec.write(self.parameterNode, name, parameter.default.value)
        return parameter.codec.read(self.parameterNode, name)

    def setValue(self, name: str, value: Any) -> None:
        """Validate and store ``value`` (one ``ModifiedEvent``)."""
        parameter = self.allParameters[name]  # type: ignore[attr-defined]
        parameter.validate(value)
        with slicer.util.NodeModify(self.parameterNode):
            parameter.codec.write(self.parameterNode, name, value)

    def default(self, name: str) -> Default:
        """The default of parameter ``name``."""
        return self.allParameters[name].default  # type: ignore[attr-defined]

    def connectGui(self, gui: Any) -> int:
        """Bind the widgets that carry ``SlicerParameterName``; return the tag for :meth:`disconnectGui`."""
        import qt

        is_widget = getattr(gui, "isWidgetType", lambda: False)()
        widgets = gui.findChildren(qt.QWidget) if is_widget else list(vars(gui).values())
        named = {widget.property(SLICER_PARAMETER_NAME): widget for widget in widgets
                 if widget.property(SLICER_PARAMETER_NAME)}
        for name in named:
            if name not in self.allParameters:  # type: ignore[attr-defined]
                raise ValueError(f"Cannot find a param with the given name: {name}")
        bindings = {name: _Binding(widget, self.allParameters[name])  # type: ignore[attr-defined]
                    for name, widget in named.items()}
        tag = self._next_tag
        self._next_tag += 1
        self._bindings[tag] = bindings
        for name, binding in bindings.items():
            binding.show(self.getValue(name))
            binding.on_change(self._gui_changed_callback(name, binding))
        self._binding_observers[tag] = self.parameterNode.AddObserver(
            vtk.vtkCommand.ModifiedEvent, lambda caller, event: self._update_gui())
        return tag

    def disconnectGui(self, tag: int) -> None:
        """Undo :meth:`connectGui`."""
        for binding in self._bindings.pop(tag, {}).values():
            binding.on_change(None)
        if tag in self._binding_observers:
            self.parameterNode.RemoveObserver(self._binding_observers.pop(tag))

    def _gui_changed_callback(self, name: str, binding: _Binding) -> Callable[[], None]:
        def changed() -> None:
            with slicer.util.NodeModify(self.parameterNode):
                if not self._updating_gui:
                    self.setValue(name, binding.read())

        return changed

    def _update_gui(self) -> None:
        if self._updating_gui:
            return
        self._updating_gui = True
        try:
            with slicer.util.NodeModify(self.parameterNode):
                for bindings in self._bindings.values():
                    for name, binding in bindings.items():
                        binding.show(self.getValue(name))
        finally:
            self._updating_gui = False

    def AddObserver(self, event: Any, callback: Any, priority: float = 0.0) -> int:
        """Observe the parameter node."""
        return self.parameterNode.AddObserver(event, callback, priority)

    def RemoveObserver(self, tag: int) -> None:
        """Stop observing the parameter node."""
        self.parameterNode.RemoveObserver(tag)

    def Modified(self) -> None:
        """Fire the parameter node's ``ModifiedEvent``."""
        self.parameterNode.Modified()

    def StartModify(self) -> int:
        """Hold the parameter node's ``ModifiedEvent`` (see ``slicer.util.NodeModify``)."""
        return self.parameterNode.StartModify()

    def EndModify(self, was_modifying: int) -> int:
        """Release it."""
        return self.parameterNode.EndModify(was_modifying)
