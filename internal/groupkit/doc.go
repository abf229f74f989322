// Package groupkit runs and observes tagstream group instances for the group benchmark (bench/group) and the
// end-to-end group tests (e2e, and group's test on the nats-server binary): a recording proxy in front of the API
// simulator that logs every feed request by member, tag and time; the queries over that log (failover times,
// polling gaps, overlapping polls of one tag by two members); and the three-node nats-server cluster of
// scripts/nats-cluster.sh (reading it from the environment, stopping and starting its nodes, finding a stream's
// leader).
//
// It serves a command as well as tests, so it does not import "testing": it returns errors, and a test fails on
// them. It does not import package group either, whose own tests use it.
package groupkit
