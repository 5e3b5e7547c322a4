"""The main window's actions (with their shortcuts and tooltips), menus and toolbar.

Each function sets the window's attributes (``act_*``, ``model_menu``, ``toolbar``…), so
the window, its tests and the shortcut help reach the actions by name."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QSizePolicy, QToolBar, QWidget

import app
from app.widgets import help

log = logging.getLogger(__name__)

TITLE = "MNIST Digit Classifier"
DRAW, STATS = 0, 1  # the tabs


def build_actions(w) -> None:
    """Every action of the window, with its shortcut, icon and tooltip."""
    K, d = QKeySequence.StandardKey, w.draw
    on_draw = w._on_draw
    w.act_open = w._action("&Open image…", w._open_image, K.Open, "open",
                                 "Predict the digit in an image file")
    w.act_export = w._action("&Export predictions to CSV…", w.stats_page.ask_export_csv, "Ctrl+E",
                                   "export", "Save every logged prediction to a CSV file")
    w.act_export_dataset = w._action("Export &dataset…", w.stats_page.ask_export_dataset,
                                           "Ctrl+Shift+E", "dataset", "Save your labelled drawings as a "
                                           "dataset (NumPy .npz or MNIST IDX files)")
    w.act_quit = w._action("&Quit", w.close, K.Quit, None, "Quit the application")
    w.act_undo = w._action("&Undo stroke", w.canvas.undo, K.Undo, "undo", "Undo the last stroke")
    w.act_redo = w._action("&Redo stroke", w.canvas.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo",
                                 "Redo the stroke you undid")
    w.act_clear = w._action("&Clear", on_draw(d.clear), ["Esc", "Delete"], "clear",
                                  "Clear the canvas (an unconfirmed drawing is saved without a label)")
    w.act_bigger = w._action("Larger brush", lambda: d.nudge_brush(+2), "]", None, "Make the brush larger")
    w.act_smaller = w._action("Smaller brush", lambda: d.nudge_brush(-2), "[", None,
                                    "Make the brush smaller")
    w.act_correct = w._action("✓ &Correct", on_draw(d.confirm), ["Return", "Enter"], "check",
                                    "The prediction is right: save it and start a new drawing")
    w.act_wrong = w._action("✗ &Wrong…", on_draw(d.wrong), "W", "cross",
                                  "The prediction is wrong: pick the digit you drew")
    w.act_train = w._action("&Train…", w.dialogs.show_training, "Ctrl+T", "train",
                                  "Train a new model on MNIST")
    w.act_load = w._action("&Load weights…", w._load_weights, "Ctrl+L", "model",
                                 "Use another weights file (.pth)")
    w.act_about_model = w._action("&About this model", w.dialogs.show_about_model, "Ctrl+I", "info",
                                        "Architecture, accuracy, date and calibration of the model in use")
    w.act_improve = w._action("&Improve with my corrections…", w.dialogs.show_improve, "Ctrl+Shift+I",
                                    "improve", "Fine-tune the model on the drawings you labelled; "
                                    "it is kept only if it gets better")
    w.act_improve.setIconText("Improve")
    w.act_versions = w._action("&Versions…", w.dialogs.show_versions, "Ctrl+Shift+V", "versions",
                                     "Every model version, and a way back to an earlier one")
    w.act_explain = w._action("&Why this digit?", lambda: None, "X", "explain",
                                    "Colour the pixels that pushed the network towards its answer "
                                    "(warm) or against it (blue)")
    w.act_explain.setCheckable(True)
    w.act_explain.setIconText("Why?")
    w.act_draw_tab = w._action("&Draw", lambda: w.tabs.setCurrentIndex(DRAW), "Ctrl+1", "draw",
                                     "Show the drawing tab")
    w.act_stats_tab = w._action("&Statistics", lambda: w.tabs.setCurrentIndex(STATS), "Ctrl+2",
                                      "stats", "Show the statistics tab")
    w.act_refresh = w._action("&Refresh statistics", w.controller.statistics.refresh_stats, "F5",
                                    "refresh", "Read the statistics again")
    w.act_shortcuts = w._action("&Keyboard shortcuts", w._show_shortcuts, K.HelpContents, None,
                                      "List the keyboard shortcuts")
    w.act_about = w._action("&About", lambda: w._box(f"About {TITLE}", help.about_html(
        TITLE, app.__version__), icon_pixmap=True), None, None, "About this application")
    # Digit keys on the Draw tab: "it is that digit".
    w._digit_actions = []
    for digit in range(10):
        a = w._action(f"It is a {digit}", on_draw(lambda digit=digit: d.label_as(digit)), str(digit), None,
                         f"Save the drawing as a {digit}")
        a.setWhatsThis("Save the drawing as that digit")
        w._digit_actions.append(a)
    keys = help.keys_of
    w.draw.hint.setText(f"{keys(w.act_correct)}: correct · {keys(w.act_wrong)}: wrong · "
                           f"{keys(w._digit_actions[0])}–{keys(w._digit_actions[-1])}: it is that "
                           f"digit · {keys(w.act_clear)}: clear · {keys(w.act_undo)}: undo")


def build_menus(w) -> None:
    """The menu bar, from the actions."""
    mb = w.menuBar()
    menus = {"&File": [w.act_open, w.act_export, w.act_export_dataset, None, w.act_quit],
             "&Edit": [w.act_undo, w.act_redo, w.act_clear, None, w.act_correct, w.act_wrong,
                       None, w.act_bigger, w.act_smaller],
             "&Model": [w.act_train, w.act_improve, None, w.act_versions, w.act_load, None,
                        w.act_about_model],
             "&View": [w.act_explain, None, w.act_draw_tab, w.act_stats_tab, None, w.act_refresh],
             "&Help": [w.act_shortcuts, w.act_about]}
    for title, actions in menus.items():
        menu = mb.addMenu(title)
        for a in actions:
            menu.addSeparator() if a is None else menu.addAction(a)
        if title == "&Model":
            w.model_menu = menu
        elif title == "&View":
            w.view_menu = menu


def build_toolbar(w) -> None:
    """The toolbar: stroke actions, the brush, open, train, improve."""
    tb = QToolBar("Tools")
    tb.setObjectName("toolbar")
    tb.setMovable(False)
    tb.setIconSize(QSize(20, 20))
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tb.addActions([w.act_undo, w.act_redo, w.act_clear])
    tb.addSeparator()
    for control in w.draw.brush_controls():
        tb.addWidget(control)
    w.brush_slider, w.brush_spin = w.draw.brush_slider, w.draw.brush_spin
    tb.addSeparator()
    tb.addActions([w.act_open, w.act_train, w.act_improve])
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    tb.addWidget(spacer)
    w.addToolBar(tb)
    w.toolbar = tb
