"""Typed errors a user can cause; each carries one sentence a person understands."""


class DanceError(Exception):
    """Base class for errors shown to users as a message, never as a traceback."""


class ImageError(DanceError):
    """An image file or upload that cannot be decoded safely."""


class DataError(DanceError):
    """A data set folder or CSV that is missing or invalid."""


class CheckpointError(DanceError):
    """A weights file or sidecar that cannot be loaded."""


class VideoError(DanceError):
    """A video file or upload that cannot be decoded safely or is beyond the limits."""
