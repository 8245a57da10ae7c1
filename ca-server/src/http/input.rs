//! Reading requests: the body (size, type, time limits), JSON, the query string.

use super::*;

pub(super) async fn read_body(auth: &Authority, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = auth.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let n: Option<usize> = len.to_str().ok().and_then(|s| s.parse().ok());
        match n {
            Some(n) if n > limit => return Err(too_large()),
            Some(_) => {}
            None => return Err(ApiError::invalid("Content-Length is not a number")),
        }
    }
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let base = ct.split(';').next().unwrap_or("").trim();
        if base != "application/json" {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
    }
    let read = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(ApiError::invalid("the request body did not arrive in time")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::invalid("the request body could not be read")),
    }
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid("the request needs a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::invalid(format!("the body is not valid JSON: {e}"))
            }
            Category::Data => ApiError::invalid(format!("the JSON does not fit this request: {e}")),
        }
    })
}

pub(super) fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("the query string is not valid percent-encoding");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

pub(super) fn parse_query(
    q: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut m = HashMap::new();
    let Some(q) = q else { return Ok(m) };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown query parameter {:?} (allowed: {})",
                k.chars().take(40).collect::<String>(),
                allowed.join(", ")
            )));
        }
        m.insert(k, percent_decode(v)?);
    }
    Ok(m)
}

pub(super) fn no_query(q: Option<&str>) -> Result<(), ApiError> {
    parse_query(q, &[]).map(|_| ())
}

pub(super) fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed here (allowed: {allowed})"),
    )
}
