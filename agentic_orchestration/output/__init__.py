"""What a run leaves on disk besides its session: files the agents wrote in their answers."""

from agentic_orchestration.output.output_artifacts import (
    ExtractedFile,
    RefusedFile,
    SavedArtifacts,
    artifacts_dir_for,
    extract_files,
    extractable_text_from_execution,
    offer_save_extracted_files_from_execution,
    refusal_reason,
    safe_relative_path,
    save_extracted_files,
)

__all__ = [
    "ExtractedFile",
    "RefusedFile",
    "SavedArtifacts",
    "artifacts_dir_for",
    "extract_files",
    "extractable_text_from_execution",
    "offer_save_extracted_files_from_execution",
    "refusal_reason",
    "safe_relative_path",
    "save_extracted_files",
]
