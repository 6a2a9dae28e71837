"""Stand-ins for the CTK widgets the module's ``.ui`` file and Slicer's ``slicer.util`` use (the ``ctk`` module).

Each is the smallest real Qt widget that behaves, for the module, as CTK's does in Slicer 5.10.0 and 5.12.3:

* :class:`ctkCollapsibleButton` (CTK ``Libs/Widgets/ctkCollapsibleButton``): a titled section whose ``text`` is
  its title and whose ``collapsed`` hides its contents; clicking the title toggles it;
* :class:`ctkPathLineEdit` (``ctkPathLineEdit``): a path field with ``currentPath`` and ``nameFilters``, emitting
  ``currentPathChanged(QString)`` when the path changes (``filters`` and ``options`` only restrict CTK's browse
  dialog, which the tests do not open: the loader keeps them as plain values);
* :class:`ctkMessageBox` (``ctkMessageBox``), the dialog ``slicer.util.messageBox`` shows (``Base/Python/slicer/
  util.py``, v5.10.0 and v5.12.3): a modal dialog waits for a click; this one records what it showed in
  :data:`SHOWN` and answers OK at once, so the test sees every dialog the user would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Property, Signal

from .pythonqt import pythonqt_class

QWIDGETSIZE_MAX = 16777215
"""Qt's largest widget size (no maximum)."""

_GroupBox: Any = pythonqt_class(QtWidgets.QGroupBox)
_Widget: Any = pythonqt_class(QtWidgets.QWidget)
_MessageBox: Any = pythonqt_class(QtWidgets.QMessageBox)


class ctkCollapsibleButton(_GroupBox):
    """A titled section (``text``) that hides its contents when ``collapsed``; a click on the title toggles it."""

    contentsCollapsed = Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        """An expanded, untitled section."""
        super().__init__(parent)
        self._collapsed = False
        self._text = ""

    def _get_text(self) -> str:
        return self._text

    def _set_text(self, text: str) -> None:
        self._text = text
        self._show_title()

    def _get_collapsed(self) -> bool:
        return self._collapsed

    def _set_collapsed(self, collapsed: bool) -> None:
        if collapsed == self._collapsed:
            return
        self._collapsed = collapsed
        for child in self.findChildren(QtWidgets.QWidget, options=QtCore.Qt.FindChildOption.FindDirectChildrenOnly):
            child.setVisible(not collapsed)
        self._show_title()
        self.contentsCollapsed.emit(collapsed)

    def _show_title(self) -> None:
        """The title with CTK's arrow; collapsed, only the title row is left (no empty frame)."""
        self.setTitle(("▸ " if self._collapsed else "▾ ") + self._text)
        self.setFlat(self._collapsed)
        self.setMaximumHeight(self.fontMetrics().height() + 6 if self._collapsed else QWIDGETSIZE_MAX)

    text = Property(str, _get_text, _set_text)
    collapsed = Property(bool, _get_collapsed, _set_collapsed)

    def childEvent(self, event: Any) -> None:
        """A child polished (about to be shown) while collapsed stays hidden: the ``.ui`` loader sets ``collapsed``
        before it creates the contents."""
        if event.type() == QtCore.QEvent.Type.ChildPolished and self._collapsed and event.child().isWidgetType():
            event.child().setVisible(False)
        super().childEvent(event)

    def mousePressEvent(self, event: Any) -> None:
        """A click on the title row toggles the contents."""
        if event.position().y() <= self.fontMetrics().height() + 4:
            self._set_collapsed(not self._collapsed)
        super().mousePressEvent(event)


class ctkPathLineEdit(_Widget):
    """A file or folder path field with a browse button (not used by the tests: they type the path)."""

    currentPathChanged = Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        """An empty path."""
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._line = QtWidgets.QLineEdit(self)
        browse = QtWidgets.QToolButton(self)
        browse.setText("...")
        layout.addWidget(self._line)
        layout.addWidget(browse)
        self._name_filters: list[str] = []
        self._line.textChanged.connect(self.currentPathChanged)

    def _get_path(self) -> str:
        return self._line.text()

    def _set_path(self, path: str) -> None:
        self._line.setText(path)

    def _get_name_filters(self) -> list[str]:
        return self._name_filters

    def _set_name_filters(self, name_filters: list[str]) -> None:
        self._name_filters = list(name_filters)

    currentPath = Property(str, _get_path, _set_path)
    nameFilters = Property("QStringList", _get_name_filters, _set_name_filters)


@dataclass(frozen=True)
class ShownDialog:
    """A message box as the user saw it."""

    title: str
    text: str
    icon: Any


SHOWN: list[ShownDialog] = []
"""Every message box shown in this process, oldest first."""


class ctkMessageBox(_MessageBox):
    """A message box that records itself in :data:`SHOWN` and is answered OK at once (no nested event loop)."""

    def exec_(self) -> int:
        """Record the dialog; the user clicks OK."""
        SHOWN.append(ShownDialog(self.windowTitle, self.text, self.icon))
        return int(QtWidgets.QMessageBox.StandardButton.Ok.value)

    exec = exec_
