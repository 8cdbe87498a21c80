//! Errors of the query tier.

/// Result alias of this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// What can go wrong while planning or running a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL text could not be parsed or planned (the user's mistake).
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The statement kind is not allowed (DDL, DML, COPY, SET …).
    #[error("statement not allowed: {0}")]
    NotAllowed(String),
    /// Execution failed inside DataFusion.
    #[error("query failed: {0}")]
    Execution(String),
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(err: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        let text = err.to_string();
        match err.find_root() {
            // verify_plan() reports refused statement kinds as plan errors
            // "DDL not supported: …", "DML not supported: …", "Statement not supported: …".
            E::Plan(msg)
                if msg.starts_with("DDL not supported")
                    || msg.starts_with("DML not supported")
                    || msg.starts_with("Statement not supported") =>
            {
                QueryError::NotAllowed(msg.clone())
            }
            E::SQL(..) | E::Plan(..) | E::SchemaError(..) | E::NotImplemented(..) => {
                QueryError::Invalid(text)
            }
            _ => QueryError::Execution(text),
        }
    }
}
