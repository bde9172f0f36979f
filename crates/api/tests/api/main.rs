//! Integration tests of the API: the real router on a real port, against a real
//! PostgreSQL, each test on a database of its own.

mod bad_input;
mod binary;
mod browser;
mod cache;
mod catalogues;
mod collisions;
mod connections;
mod contract;
mod events;
mod helpers;
mod keys;
mod links_create;
mod links_idempotency;
mod links_limits;
mod links_list;
mod links_manage;
mod links_replicas;
mod links_support;
mod memory;
mod metrics;
mod openapi;
mod pages;
mod protection;
mod redis_access;
mod system;
mod targets;
mod traces;
mod visits;
