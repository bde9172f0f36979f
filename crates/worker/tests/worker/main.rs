//! Integration tests of the worker against real PostgreSQL and RabbitMQ: each test
//! has its own database and AMQP namespace, so tests run in parallel with each
//! other and with the API's.

mod binary;
mod consuming;
mod dead_letters;
mod health;
mod helpers;
mod outages;
mod pruning;
