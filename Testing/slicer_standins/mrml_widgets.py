"""Stand-ins for Slicer's MRML widgets in the module's ``.ui`` file, bound to a real MRML scene (slicer-core).

Each is the smallest real Qt widget that behaves, for the module, as Slicer's C++ widget does in 5.10.0 and 5.12.3
(``Libs/MRML/Widgets``):

* :class:`qMRMLWidget`: ``setMRMLScene(vtkMRMLScene*)`` emits ``mrmlSceneChanged(vtkMRMLScene*)``, which the
  ``.ui`` file connects to its children's ``setMRMLScene``;
* :class:`qMRMLNodeComboBox`: lists the scene's nodes of ``nodeTypes`` (subclasses too unless
  ``showChildNodeTypes`` is off; not ``HideFromEditors`` nodes nor the ``hiddenNodeIDs`` of its
  ``sortFilterProxyModel()``), a "None" entry when ``noneEnabled``; ``currentNode()``/``setCurrentNode``; emits
  ``currentNodeChanged(vtkMRMLNode*)`` when the user picks a node or the current one leaves the scene;
* :class:`qMRMLSegmentSelectorWidget` in multi-selection mode: the current segmentation's segments as checkable
  items (repopulated when segments are added, removed or renamed, keeping the choice), ``setSelectedSegmentIDs``
  (unknown IDs dropped; ``segmentSelectionChanged(QStringList)`` emitted when the choice changed, as the user's
  checking does).
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Property, Signal, Slot

from .pythonqt import pythonqt_class

_Widget: Any = pythonqt_class(QtWidgets.QWidget)
_Object: Any = pythonqt_class(QtCore.QObject)

SCENE_EVENTS = ("NodeAddedEvent", "NodeRemovedEvent", "EndBatchProcessEvent")


class qMRMLWidget(_Widget):
    """A widget holding a MRML scene, handed on to its children through the ``.ui`` file's connections."""

    mrmlSceneChanged = Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        """A widget without a scene."""
        super().__init__(parent)
        self._scene: Any = None

    @Slot(object)
    def setMRMLScene(self, scene: Any) -> None:
        """Hold ``scene`` and hand it on."""
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self) -> Any:
        """The scene held."""
        return self._scene


def _flag_property(name: str) -> Property:
    """A boolean Qt property kept in the widget's ``_flags``; a node list is rebuilt when one changes."""

    def read(self: Any) -> bool:
        return self._flags[name]

    def write(self: Any, value: bool) -> None:
        self._flags[name] = bool(value)
        if hasattr(self, "_populate"):
            self._populate()

    return Property(bool, read, write)


class _SceneObserver:
    """Observes a scene's node additions and removals (and the end of a batch: Close, Import) for a widget."""

    def __init__(self, on_change: Any) -> None:
        self._on_change = on_change
        self._scene: Any = None
        self._tags: list[int] = []

    def observe(self, scene: Any) -> None:
        if self._scene is not None:
            for tag in self._tags:
                self._scene.RemoveObserver(tag)
        self._scene, self._tags = scene, []
        if scene is not None:
            self._tags = [scene.AddObserver(getattr(scene, event), self._changed) for event in SCENE_EVENTS]

    def _changed(self, scene: Any, _event: Any) -> None:
        if not scene.IsBatchProcessing():
            self._on_change()


class qMRMLSortFilterProxyModel(_Object):
    """The node combo box's filter: the node IDs it hides (``hiddenNodeIDs``)."""

    hiddenNodeIDsChanged = Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        """No node hidden."""
        super().__init__(parent)
        self._hidden: list[str] = []

    def _get_hidden(self) -> list[str]:
        return self._hidden

    def _set_hidden(self, node_ids: list[str]) -> None:
        self._hidden = [str(node_id) for node_id in node_ids]
        self.hiddenNodeIDsChanged.emit()

    hiddenNodeIDs = Property("QStringList", _get_hidden, _set_hidden)


class qMRMLNodeComboBox(_Widget):
    """A combo box of the scene's nodes of some classes (see the module's docstring)."""

    currentNodeChanged = Signal(object)
    currentNodeIDChanged = Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        """An empty combo box without a scene."""
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._combo = QtWidgets.QComboBox(self)
        self._combo.setObjectName("ComboBox")
        layout.addWidget(self._combo)
        self._proxy = qMRMLSortFilterProxyModel(self)
        self._proxy.hiddenNodeIDsChanged.connect(self._populate)
        self._observer = _SceneObserver(self._populate)
        self._scene: Any = None
        self._current_id = ""
        self._node_types: list[str] = []
        self._flags = {"noneEnabled": False, "addEnabled": True, "removeEnabled": True, "showHidden": False,
                       "showChildNodeTypes": True}
        self._none_display = "None"
        self._combo.currentIndexChanged.connect(self._on_user_choice)

    noneEnabled = _flag_property("noneEnabled")
    addEnabled = _flag_property("addEnabled")
    removeEnabled = _flag_property("removeEnabled")
    showHidden = _flag_property("showHidden")
    showChildNodeTypes = _flag_property("showChildNodeTypes")

    def _get_node_types(self) -> list[str]:
        return self._node_types

    def _set_node_types(self, node_types: list[str]) -> None:
        self._node_types = [str(node_type) for node_type in node_types]
        self._populate()

    def _get_none_display(self) -> str:
        return self._none_display

    def _set_none_display(self, text: str) -> None:
        self._none_display = text
        self._populate()

    nodeTypes = Property("QStringList", _get_node_types, _set_node_types)
    noneDisplay = Property(str, _get_none_display, _set_none_display)

    def _get_current_id(self) -> str:
        return self._current_id

    currentNodeID = Property(str, _get_current_id, lambda self, node_id: self.setCurrentNodeID(node_id))

    @Slot(object)
    def setMRMLScene(self, scene: Any) -> None:
        """List the nodes of ``scene`` (and follow its changes)."""
        self._scene = scene
        self._observer.observe(scene)
        self._populate()

    def mrmlScene(self) -> Any:
        """The scene listed."""
        return self._scene

    def sortFilterProxyModel(self) -> qMRMLSortFilterProxyModel:
        """The filter (its ``hiddenNodeIDs``)."""
        return self._proxy

    def nodes(self) -> list[Any]:
        """The nodes listed, in the scene's order."""
        if self._scene is None:
            return []
        hidden = set(self._proxy.hiddenNodeIDs)
        listed = []
        for index in range(self._scene.GetNumberOfNodes()):
            node = self._scene.GetNthNode(index)
            if node.GetID() in hidden or (node.GetHideFromEditors() and not self._flags["showHidden"]):
                continue
            if self._flags["showChildNodeTypes"]:
                matches = any(node.IsA(node_type) for node_type in self._node_types)
            else:
                matches = node.GetClassName() in self._node_types
            if matches:
                listed.append(node)
        return listed

    def currentNode(self) -> Any:
        """The chosen node (None when none)."""
        if self._scene is None or not self._current_id:
            return None
        return self._scene.GetNodeByID(self._current_id)

    @Slot(object)
    def setCurrentNode(self, node: Any) -> None:
        """Choose ``node`` (None: none)."""
        self.setCurrentNodeID(node.GetID() if node is not None else "")

    @Slot(str)
    def setCurrentNodeID(self, node_id: str) -> None:
        """Choose the node of ``node_id`` ("" : none)."""
        node_id = node_id or ""
        if node_id == self._current_id:
            return
        self._current_id = node_id
        self._populate()
        self.currentNodeIDChanged.emit(node_id)
        self.currentNodeChanged.emit(self.currentNode())

    def _populate(self) -> None:
        """Rebuild the list; a current node that left it is replaced (by none, or the first node)."""
        nodes = self.nodes()
        listed_ids = [node.GetID() for node in nodes]
        if self._current_id and self._current_id not in listed_ids:
            self._current_id = ""
            self.currentNodeIDChanged.emit("")
            self.currentNodeChanged.emit(None)
        if not self._current_id and not self._flags["noneEnabled"] and listed_ids:
            self.setCurrentNodeID(listed_ids[0])
            return
        blocked = self._combo.blockSignals(True)
        self._combo.clear()
        if self._flags["noneEnabled"]:
            self._combo.addItem(self._none_display, "")
        for node in nodes:
            self._combo.addItem(node.GetName(), node.GetID())
        self._combo.setCurrentIndex(max(self._combo.findData(self._current_id), 0))
        self._combo.blockSignals(blocked)

    def _on_user_choice(self, index: int) -> None:
        """The user picked an entry."""
        self.setCurrentNodeID(self._combo.itemData(index) or "")

    def choose(self, node: Any) -> None:
        """Pick ``node`` in the list as the user does (the test's hand on the combo box)."""
        index = self._combo.findData(node.GetID() if node is not None else "")
        if index < 0:
            raise LookupError(f"{node.GetName() if node else 'None'} is not listed in {self.objectName}")
        self._combo.setCurrentIndex(index)


class qMRMLSegmentSelectorWidget(qMRMLWidget):
    """The segments of one segmentation node, checkable (multi-selection mode; see the module's docstring)."""

    currentNodeChanged = Signal(object)
    segmentSelectionChanged = Signal("QStringList")

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        """No segmentation yet."""
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._list = QtWidgets.QListWidget(self)
        self._list.setObjectName("SegmentList")
        self._list.setMaximumHeight(96)
        layout.addWidget(self._list)
        self._node: Any = None
        self._node_tags: list[int] = []
        self._selected: list[str] = []
        self._flags = {"noneEnabled": False, "editEnabled": True, "segmentationNodeSelectorVisible": True,
                       "multiSelection": False}
        self._list.itemChanged.connect(self._on_user_check)

    noneEnabled = _flag_property("noneEnabled")
    editEnabled = _flag_property("editEnabled")
    segmentationNodeSelectorVisible = _flag_property("segmentationNodeSelectorVisible")
    multiSelection = _flag_property("multiSelection")

    def currentNode(self) -> Any:
        """The segmentation node shown."""
        return self._node

    @Slot(object)
    def setCurrentNode(self, node: Any) -> None:
        """Show the segments of ``node`` (None: none), following its segments."""
        if node is self._node:
            return
        if self._node is not None:
            for tag in self._node_tags:
                self._node.RemoveObserver(tag)
        self._node, self._node_tags = node, []
        if node is not None:
            events = (node.GetSegmentation().SegmentAdded, node.GetSegmentation().SegmentRemoved,
                      node.GetSegmentation().SegmentModified)
            self._node_tags = [node.AddObserver(event, lambda *_: self._populate()) for event in events]
        self._populate()
        self.currentNodeChanged.emit(node)

    def segmentIDs(self) -> list[str]:
        """The IDs of the listed segments."""
        return [self._list.item(row).data(QtCore.Qt.ItemDataRole.UserRole) for row in range(self._list.count())]

    def selectedSegmentIDs(self) -> list[str]:
        """The checked segments' IDs."""
        return list(self._selected)

    @Slot("QStringList")
    def setSelectedSegmentIDs(self, segment_ids: list[str]) -> None:
        """Check exactly these segments (IDs not in the segmentation are dropped)."""
        if self._node is None:
            return
        segmentation = self._node.GetSegmentation()
        chosen = [str(segment_id) for segment_id in segment_ids if segmentation.GetSegment(str(segment_id))]
        changed = chosen != self._selected
        self._selected = chosen
        self._show_checks()
        if changed:
            self.segmentSelectionChanged.emit(list(chosen))

    def _populate(self) -> None:
        blocked = self._list.blockSignals(True)
        self._list.clear()
        if self._node is not None:
            segmentation = self._node.GetSegmentation()
            for index in range(segmentation.GetNumberOfSegments()):
                item = QtWidgets.QListWidgetItem(segmentation.GetNthSegment(index).GetName())
                item.setData(QtCore.Qt.ItemDataRole.UserRole, segmentation.GetNthSegmentID(index))
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                self._list.addItem(item)
        self._list.blockSignals(blocked)
        self.setSelectedSegmentIDs(self._selected)
        self._show_checks()

    def _show_checks(self) -> None:
        blocked = self._list.blockSignals(True)
        for row in range(self._list.count()):
            item = self._list.item(row)
            checked = item.data(QtCore.Qt.ItemDataRole.UserRole) in self._selected
            item.setCheckState(QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)
        self._list.blockSignals(blocked)

    def _on_user_check(self, _item: Any) -> None:
        """The user checked or unchecked a segment."""
        self._selected = [
            self._list.item(row).data(QtCore.Qt.ItemDataRole.UserRole)
            for row in range(self._list.count())
            if self._list.item(row).checkState() == QtCore.Qt.CheckState.Checked
        ]
        self.segmentSelectionChanged.emit(list(self._selected))

    def check(self, segment_ids: list[str]) -> None:
        """Check exactly these segments, one click each, as the user does (the test's hand on the list)."""
        for row in range(self._list.count()):
            item = self._list.item(row)
            wanted = item.data(QtCore.Qt.ItemDataRole.UserRole) in segment_ids
            if (item.checkState() == QtCore.Qt.CheckState.Checked) != wanted:
                item.setCheckState(QtCore.Qt.CheckState.Checked if wanted else QtCore.Qt.CheckState.Unchecked)

