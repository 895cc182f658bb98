//! The diagnostic codes of `.flowc` errors: `flow-ir` frames and reads the artefact, the
//! code registry lives with the diagnostics.

use flow_grammar::{Code, codes};
use flow_ir::artefact::ArtefactError;

/// The diagnostic code users look up for an artefact error.
pub fn error_code(error: &ArtefactError) -> Code {
    match error {
        ArtefactError::NotFlowc => codes::ARTEFACT_NOT_FLOWC,
        ArtefactError::Version { .. } => codes::ARTEFACT_VERSION,
        ArtefactError::Truncated { .. } => codes::ARTEFACT_TRUNCATED,
        ArtefactError::Corrupt => codes::ARTEFACT_CORRUPT,
        ArtefactError::Unreadable(_) | ArtefactError::Encode(_) => codes::ARTEFACT_UNREADABLE,
    }
}
