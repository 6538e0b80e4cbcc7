//! Autodiscover error codes 500–603 ([MS-OXDSCLI] §2.2.4.1.1.3.2).

/// A POX Autodiscover error; always sent in an HTTP 200 body ([MS-OXDSCLI] §3.2.5: clients
/// treat any other status as a dead endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 500: the address cannot be found (unknown, or not a user/mailbox).
    AddressNotFound,
    /// 501: the address is known but there is no configuration for it.
    NoConfiguration,
    /// 600: malformed or missing request.
    InvalidRequest,
    /// 601: no provider for the requested response schema.
    ProviderUnavailable,
    /// 602: the address is known but its configuration is wrong (e.g. no redirect target).
    ConfigurationError,
    /// 603: internal server error, such as the directory being unreachable.
    ServerError,
}

impl ErrorCode {
    /// The numeric wire code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::AddressNotFound => 500,
            ErrorCode::NoConfiguration => 501,
            ErrorCode::InvalidRequest => 600,
            ErrorCode::ProviderUnavailable => 601,
            ErrorCode::ConfigurationError => 602,
            ErrorCode::ServerError => 603,
        }
    }

    /// The message text Exchange (or our documented equivalent) sends.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::AddressNotFound => "The email address can't be found.",
            ErrorCode::NoConfiguration => {
                "No configuration information is available for this email address."
            }
            ErrorCode::InvalidRequest => "Invalid Request",
            ErrorCode::ProviderUnavailable => "The requested response schema is not supported.",
            ErrorCode::ConfigurationError => {
                "The configuration information for this email address is invalid."
            }
            ErrorCode::ServerError => "An internal server error occurred. The operation failed.",
        }
    }

    /// A short outcome label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorCode::AddressNotFound => "error_500",
            ErrorCode::NoConfiguration => "error_501",
            ErrorCode::InvalidRequest => "error_600",
            ErrorCode::ProviderUnavailable => "error_601",
            ErrorCode::ConfigurationError => "error_602",
            ErrorCode::ServerError => "error_603",
        }
    }
}

/// The attributes of an `<Error>` element: `Time` (time of day, .NET TimeSpan with 7
/// fractional digits) and `Id` (a stable number identifying this server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorStamp {
    /// Nanoseconds since midnight, server time.
    pub nanos_since_midnight: u64,
    pub server_id: u32,
}

impl ErrorStamp {
    /// `HH:MM:SS.fffffff`.
    pub fn time_text(&self) -> String {
        let total_secs = (self.nanos_since_midnight / 1_000_000_000) % 86_400;
        let ticks = (self.nanos_since_midnight % 1_000_000_000) / 100;
        format!(
            "{:02}:{:02}:{:02}.{:07}",
            total_secs / 3600,
            (total_secs / 60) % 60,
            total_secs % 60,
            ticks
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_time_has_seven_fraction_digits() {
        let stamp = ErrorStamp {
            nanos_since_midnight: ((14 * 3600 + 7 * 60 + 31) * 1_000_000_000) + 512_044_800,
            server_id: 1,
        };
        assert_eq!(stamp.time_text(), "14:07:31.5120448");
    }

    #[test]
    fn codes_match_the_specification() {
        let all = [
            ErrorCode::AddressNotFound,
            ErrorCode::NoConfiguration,
            ErrorCode::InvalidRequest,
            ErrorCode::ProviderUnavailable,
            ErrorCode::ConfigurationError,
            ErrorCode::ServerError,
        ];
        let codes: Vec<u16> = all.iter().map(|c| c.code()).collect();
        assert_eq!(codes, vec![500, 501, 600, 601, 602, 603]);
    }
}
