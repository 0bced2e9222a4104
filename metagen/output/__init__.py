"""Output files: what one generated piece records, where it goes, how it is written and read back.

A piece becomes `<out>/<world>/<kind>/<subject>-<seed>.<ext>` (paths) in one of five formats
(formats), written atomically without clobbering or following links (writing), and read back
for replay and resume (reading). The record itself is a Piece (piece).
"""

from metagen.output.formats import (
    DIALOGUE_ONLY_FORMATS,
    FORMATS,
    check_format,
    escape_ink,
    escape_yarn,
    format_name,
    node_name,
    render,
    single_file_format,
)
from metagen.output.paths import MAX_COMPONENT, named_file_format, output_path, request_digest, request_name, sanitize_component
from metagen.output.piece import FINISH_REASONS, Piece
from metagen.output.reading import (
    MAX_PIECE_BYTES,
    is_complete,
    parse_front_matter,
    field_difference,
    read_piece_file,
    recorded_difference,
    recorded_fields,
)
from metagen.output.writing import (
    WALK_TRIES,
    OutputFolder,
    check_not_exists,
    check_not_folder,
    check_writable,
    exists_words,
    name_too_long,
    remove_stale_temps,
    write_atomic,
    write_piece,
)

__all__ = [
    "DIALOGUE_ONLY_FORMATS", "FINISH_REASONS", "FORMATS", "MAX_COMPONENT", "MAX_PIECE_BYTES", "WALK_TRIES",
    "OutputFolder", "Piece", "check_format", "check_not_exists", "check_not_folder", "check_writable", "escape_ink",
    "escape_yarn",
    "exists_words",
    "field_difference", "is_complete", "name_too_long", "node_name", "output_path", "parse_front_matter", "read_piece_file",
    "recorded_difference", "recorded_fields", "remove_stale_temps",
    "format_name", "named_file_format", "render", "request_digest", "request_name", "sanitize_component", "single_file_format", "write_atomic", "write_piece",
]
