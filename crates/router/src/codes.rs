//! Heroku router error codes and the HTML pages the router serves for them.

use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    H10,
    H12,
    H13,
    H14,
    H15,
    H17,
    H18,
    H19,
    H20,
    H21,
    H26,
    H27,
    H80,
    H81,
    H99,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::H10 => "H10",
            ErrorCode::H12 => "H12",
            ErrorCode::H13 => "H13",
            ErrorCode::H14 => "H14",
            ErrorCode::H15 => "H15",
            ErrorCode::H17 => "H17",
            ErrorCode::H18 => "H18",
            ErrorCode::H19 => "H19",
            ErrorCode::H20 => "H20",
            ErrorCode::H21 => "H21",
            ErrorCode::H26 => "H26",
            ErrorCode::H27 => "H27",
            ErrorCode::H80 => "H80",
            ErrorCode::H81 => "H81",
            ErrorCode::H99 => "H99",
        }
    }

    pub fn desc(self) -> &'static str {
        match self {
            ErrorCode::H10 => "App crashed",
            ErrorCode::H12 => "Request timeout",
            ErrorCode::H13 => "Connection closed without response",
            ErrorCode::H14 => "No web processes running",
            ErrorCode::H15 => "Idle connection",
            ErrorCode::H17 => "Poorly formatted HTTP response",
            ErrorCode::H18 => "Server Request Interrupted",
            ErrorCode::H19 => "Backend connection timeout",
            ErrorCode::H20 => "App boot timeout",
            ErrorCode::H21 => "Backend connection refused",
            ErrorCode::H26 => "Request Error",
            ErrorCode::H27 => "Client Request Interrupted",
            ErrorCode::H80 => "Maintenance mode",
            ErrorCode::H81 => "Blank app",
            ErrorCode::H99 => "Platform error",
        }
    }

    /// What the client sees (499 is only logged: the client is gone).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::H81 => StatusCode::BAD_GATEWAY,
            ErrorCode::H26 => StatusCode::BAD_REQUEST,
            ErrorCode::H27 => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// H80 is logged `at=info`: maintenance is intended, not a failure.
    pub fn is_info(self) -> bool {
        matches!(self, ErrorCode::H80)
    }

    pub fn page(self) -> &'static str {
        match self {
            ErrorCode::H80 => MAINTENANCE_PAGE,
            ErrorCode::H81 => BLANK_APP_PAGE,
            ErrorCode::H26 => BAD_REQUEST_PAGE,
            _ => APPLICATION_ERROR_PAGE,
        }
    }
}

const APPLICATION_ERROR_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Application Error</title></head>\n<body>\n<h1>Application error</h1>\n<p>An error occurred in the application and your page could not be served. If you are the application owner, check your logs for details. You can do this from the Hoist CLI with the command <code>hoist logs --tail</code></p>\n</body>\n</html>\n";

const MAINTENANCE_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Offline for Maintenance</title></head>\n<body>\n<h1>Offline for Maintenance</h1>\n<p>This app is undergoing maintenance right now. Please check back later.</p>\n</body>\n</html>\n";

const BLANK_APP_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Hoist | Welcome to your new app!</title></head>\n<body>\n<h1>Welcome to your new app!</h1>\n<p>Nothing has been deployed to this app yet. Push some code with <code>git push hoist main</code>.</p>\n</body>\n</html>\n";

const BAD_REQUEST_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Bad Request</title></head>\n<body>\n<h1>Bad Request</h1>\n<p>The request could not be understood by the router.</p>\n</body>\n</html>\n";

pub const NO_SUCH_APP_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>No such app</title></head>\n<body>\n<h1>There's nothing here, yet.</h1>\n<p>no such app</p>\n</body>\n</html>\n";

pub fn plain_page(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("Error");
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{reason}</title></head>\n<body>\n<h1>{} {reason}</h1>\n</body>\n</html>\n",
        status.as_u16()
    )
}
