//! `GET /v1/links/{phrase}`: a link with its visit total and newest visits.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use offndat_domain::Visit;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::PhraseParam;
use crate::response::{json, timestamp};
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkBody {
    id: uuid::Uuid,
    phrase: String,
    target_url: String,
    language_id: u8,
    theme_id: u8,
    visits: i64,
    recent_visits: Vec<VisitBody>,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VisitBody {
    visited_at: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    referrer: Option<String>,
    potential_bot: bool,
}

impl From<Visit> for VisitBody {
    fn from(visit: Visit) -> Self {
        Self {
            visited_at: timestamp(visit.visited_at),
            ip_address: visit.ip_address,
            user_agent: visit.user_agent,
            referrer: visit.referrer,
            potential_bot: visit.potential_bot,
        }
    }
}

pub async fn read_link(State(state): State<AppState>, PhraseParam(phrase): PhraseParam) -> Result<Response, ApiError> {
    let stats = state.read_link_stats.execute(&phrase).await?;
    let link = stats.link;
    Ok(json(
        StatusCode::OK,
        &LinkBody {
            id: link.id,
            phrase: link.phrase.into_inner(),
            target_url: link.target_url.to_string(),
            language_id: link.language.id(),
            theme_id: link.theme.id(),
            visits: stats.visits,
            recent_visits: stats.recent_visits.into_iter().map(VisitBody::from).collect(),
            created_at: timestamp(link.created_at),
        },
    ))
}
