//! Integration tests of the API: the real router on a real port, against a real
//! PostgreSQL, each test on a database of its own.

mod bad_input;
mod binary;
mod browser;
mod cache;
mod catalogues;
mod collisions;
mod contract;
mod events;
mod helpers;
mod openapi;
mod pages;
mod protection;
mod system;
mod traces;
mod visits;
