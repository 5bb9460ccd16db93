"""The exception module of the vector capture (shared/wire/oslo-rabbit/capture), verbatim in
behaviour: a nova-style exception that keeps its keyword arguments in ``.kwargs``."""


class WidgetNotFound(Exception):
    """Nova-style exception: keeps its keyword arguments in .kwargs."""

    msg_fmt = "Widget %(widget_id)s could not be found."

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if not message:
            message = self.msg_fmt % kwargs
        super().__init__(message)
