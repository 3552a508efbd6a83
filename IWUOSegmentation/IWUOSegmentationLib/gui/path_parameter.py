"""A `str` parameter bound to a ctkPathLineEdit (GUI layer), for a folder field that is empty until chosen.

Slicer's parameterNodeWrapper binds a ctkPathLineEdit only to pathlib types
(guiConnectors.py, ctkPathLineEditToPathConnector, 5.4-5.12), and its PathSerializer's default is
`Path()`, shown as "."; `Path("")` is "." too. A `str` field (StringSerializer: default "", the same
parameter text as the Path serializer writes, so scenes saved before read back) needs this connector:
Slicer's own one with the type check for `str`. Importing this module registers it.
"""

import ctk
from slicer.parameterNodeWrapper import parameterNodeGuiConnector, unannotatedType
from slicer.parameterNodeWrapper.guiConnectors import ctkPathLineEditToPathConnector


@parameterNodeGuiConnector
class ctkPathLineEditToStrConnector(ctkPathLineEditToPathConnector):
    @staticmethod
    def canRepresent(widget, datatype) -> bool:
        return type(widget) == ctk.ctkPathLineEdit and unannotatedType(datatype) == str  # noqa: E721 (as Slicer's)

    @staticmethod
    def create(widget, datatype):
        if ctkPathLineEditToStrConnector.canRepresent(widget, datatype):
            return ctkPathLineEditToStrConnector(widget, datatype)
        return None
