//! The integration tests, in one binary: one module per area, and the harness they share
//! (`helpers`).

mod helpers;

mod account;
mod calendar;
mod cli;
mod config;
mod contract;
mod crash;
mod e2e;
mod faults;
mod hostile;
mod http;
mod objects;
mod pace;
mod processes;
mod query;
mod scan;
mod schedule;
mod security;
mod sim;
mod store;
mod zoom;
