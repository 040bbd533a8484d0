//! The demo pages, embedded in the binary: the chat at `/`, the dashboard at
//! `/dashboard`, their scripts and style under `/web/`, and the browser
//! client (`clients/js`) at `/switchboard.js` (types at `/switchboard.d.ts`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

macro_rules! asset {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $path))
    };
}

/// The asset at `path`: its content type and bytes.
fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match path {
        "/" | "/index.html" => (HTML, asset!("web/index.html")),
        "/dashboard" | "/dashboard.html" => (HTML, asset!("web/dashboard.html")),
        "/web/chat.js" => (JS, asset!("web/chat.js")),
        "/web/dashboard.js" => (JS, asset!("web/dashboard.js")),
        "/web/app.css" => ("text/css; charset=utf-8", asset!("web/app.css")),
        "/switchboard.js" => (JS, asset!("clients/js/switchboard.js")),
        "/switchboard.d.ts" => (
            "application/typescript; charset=utf-8",
            asset!("clients/js/switchboard.d.ts"),
        ),
        _ => return None,
    })
}

/// The response for an asset path, `None` when there is no such asset.
pub(crate) fn response(path: &str) -> Option<Response<Full<Bytes>>> {
    let (content_type, body) = find(path)?;
    let mut res = Response::new(Full::new(Bytes::from_static(body)));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load: a new binary serves new pages at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(res)
}
