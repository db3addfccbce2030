use std::io;

/// Everything that can go wrong while building, probing or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum NetlabError {
    /// A command could not be started at all (missing binary, ...).
    #[error("starting `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status, as text.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A command's output could not be understood.
    #[error("parsing {what}: {detail}")]
    Parse {
        /// What was parsed.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// The request makes no sense (bad name, unknown host, too many nodes, ...).
    #[error("{0}")]
    Invalid(String),
}

impl NetlabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        NetlabError::Io {
            context: context.into(),
            source,
        }
    }
}
