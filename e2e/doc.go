// Package e2e holds tagstream's end-to-end, fault and process-level tests against real brokers: the project's API
// simulator (testenv, in-process, HTTPS) feeds the built tagstream binary, which publishes to a real Apache Kafka
// broker or a real nats-server with JetStream; a consumer (internal/consume) then reads everything back and compares
// it with the simulator's ground truth (every media present, per-tag order, no duplicates on JetStream, field values
// equal to the source) and reports the time from post to event. The process-level tests of the command (signals,
// restarts on the same state, a broker absent at start-up, tail, the demo, version) run the same binary
// (cli_test.go), and readme_test.go runs the README's commands as written; what needs no process of its own is tested in-process in cmd/tagstream and internal/pipeline.
//
// The tests are built only with the integration build tag (scripts/test.sh runs go test -tags integration after
// starting the brokers), so that the unit run, go test ./..., neither links nor starts this package's binary. Built
// with the tag, the package needs TAGSTREAM_KAFKA_BROKERS, TAGSTREAM_NATS_URL, TAGSTREAM_NATS_SERVER_BIN and
// TAGSTREAM_KAFKA_HOME, and fails naming the missing variable. Each JetStream test starts its own nats-server process from
// TAGSTREAM_NATS_SERVER_BIN (so that it can be killed and restarted); Kafka tests use TAGSTREAM_KAFKA_BROKERS with a
// topic of their own, except the broker-restart test, which starts a private Kafka from TAGSTREAM_KAFKA_HOME so
// that restarting it cannot disturb other packages' tests.
//
//	. /tmp/tagstream-brokers/env && go test -race -count=1 -tags integration ./e2e/
//	TAGSTREAM_E2E_RACE=0   builds the binary without the race detector
package e2e
