//! Origin checks and CORS headers.

use http::header::{self, HeaderMap, HeaderValue};

use super::config::{Cors, EngineConfig};

/// Whether the request's `Origin` passes the allow-list.
pub(crate) fn origin_allowed(config: &EngineConfig, headers: &HeaderMap) -> bool {
    let Some(list) = &config.allowed_origins else {
        return true;
    };
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(o)) => o != "null" && list.iter().any(|a| a == o),
        Some(Err(_)) => false,
    }
}

/// Adds CORS headers to a response for a request from `origin`.
pub(crate) fn apply(config: &EngineConfig, origin: Option<&HeaderValue>, res: &mut HeaderMap) {
    match &config.cors {
        Cors::Off => {}
        Cors::Any => {
            res.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        Cors::List {
            origins,
            credentials,
        } => {
            res.append(header::VARY, HeaderValue::from_static("Origin"));
            let Some(origin) = origin else {
                return;
            };
            if origin
                .to_str()
                .is_ok_and(|o| origins.iter().any(|a| a == o))
            {
                res.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                if *credentials {
                    res.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
            }
        }
    }
}

/// Headers of a preflight (`OPTIONS`) answer.
pub(crate) fn preflight(config: &EngineConfig, req: &HeaderMap, res: &mut HeaderMap) {
    apply(config, req.get(header::ORIGIN), res);
    if matches!(config.cors, Cors::Off) {
        return;
    }
    res.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
    );
    if let Some(h) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        res.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        res.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
    }
}
