"""An exception module both sides may rebuild (``allowed_remote_exmods``): nova-style."""


class WidgetNotFound(Exception):
    """Keeps its keyword arguments in ``.kwargs``, as nova's exceptions do."""

    msg_fmt = "Widget %(widget_id)s could not be found."

    def __init__(self, message: str | None = None, **kwargs: object) -> None:
        self.kwargs = kwargs
        super().__init__(message or self.msg_fmt % kwargs)
