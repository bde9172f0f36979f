//! The offndat HTTP API: routes, extractors, problem details, middleware, and the
//! composition root that wires adapters into use cases.

pub mod app;
pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod commands;
pub mod config;
pub mod connection_deadlines;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod openapi;
pub mod pages;
pub mod problem;
pub mod rate_limit;
pub mod request_context;
pub mod response;
pub mod routes;
pub mod server;
pub mod short_url;
pub mod state;

pub use app::Application;
