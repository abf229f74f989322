//go:build integration

package e2e

import (
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

// TestKillNineThreeTimes kills tagstream with SIGKILL three times during a run and restarts it on the same state
// each time. Each kill comes the moment the broker sees the first event of a burst of more than a page, so that the
// rest of the batch is often in flight and its cursor not saved. Nothing may be missing; JetStream must hold no
// duplicate (it drops the re-published events by Nats-Msg-Id; the publisher's count of those is logged); Kafka may
// repeat only what was read around a kill, and those repeats are counted and logged.
func TestKillNineThreeTimes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sink string
	}{
		{"JetStream ends with every media once", sinkJetStream},
		{"Kafka ends with every media, repeats only around the kills", sinkKafka},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline(t, pipelineOptions{Sink: tc.sink})
			p.start()
			ctx := t.Context()
			dropped := 0.0 // re-published events JetStream dropped by Nats-Msg-Id, summed over the runs
			scrape := func() {
				if v, err := p.ts.metric("tagstream_publisher_duplicates_total"); err == nil {
					dropped += v
				}
			}
			for i := range 3 {
				hold(ctx, 3*time.Second)
				// A burst of more than a page (a multi-page walk, one big batch); tagstream is killed the moment
				// the broker sees the first of it, while the rest of the batch is in flight.
				w := p.watchArrival("sunset")
				for _, tr := range p.sim.Post("sunset", 40+20*i) {
					w.expect(tr.MediaID)
				}
				select {
				case <-w.seen:
				case <-time.After(10 * time.Second):
					t.Logf("kill %d: the burst did not reach the broker within 10 s; killing anyway", i+1)
				}
				w.stop()
				scrape()
				at := p.ts.kill9()
				p.fault("kill -9 of tagstream", at, at)
				p.start()
			}
			hold(ctx, 3*time.Second)
			scrape()
			rep := p.finish()
			t.Logf("%s after 3 kills: %d repeats by media, %d by id, %d within the kill windows; publisher-reported broker duplicates %v",
				tc.sink, rep.DupByMedia, rep.DupByID, rep.DupInWindows, dropped)
		})
	}
}

// TestBrokerRestart restarts the broker during a run: the test's own nats-server is killed (SIGKILL) and started
// again on the same port and store; a private Kafka (so that the shared one stays up for other packages) is
// stopped and started again on the same port and data. tagstream keeps running throughout.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sink string
	}{
		{"nats-server killed and restarted: every media once on JetStream", sinkJetStream},
		{"Kafka stopped and restarted: every media, repeats only around the restart", sinkKafka},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := pipelineOptions{Sink: tc.sink}
			var k *kafkaServer
			if tc.sink == sinkKafka {
				k = startKafka(t)
				o.KafkaAddr = k.Addr()
			}
			p := newPipeline(t, o)
			p.start()
			ctx := t.Context()
			hold(ctx, 4*time.Second)
			var from time.Time
			if k != nil {
				from = k.stop()
			} else {
				from = p.nats.kill()
			}
			p.sim.Post("coffee", 50) // posted while the broker is away
			hold(ctx, 5*time.Second)
			if !p.ts.proc.running() {
				t.Fatalf("tagstream exited (status %d) while the broker was away", p.ts.proc.exitCode())
			}
			if k != nil {
				k.start()
			} else {
				p.nats.start()
			}
			p.fault("broker restart", from, time.Now())
			hold(ctx, 4*time.Second)
			p.finish()
		})
	}
}

// TestAPIFaults runs the pipeline through the API's failures: 503 storms on top of a rate limit that bites, a
// token revoked mid-run, and the whole API down for 30 seconds. After each, nothing may be missing or repeated.
func TestAPIFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sink string
		sim  simOptions
		run  func(t *testing.T, p *pipeline)
	}{
		{
			name: "503 storms and a token whose limit bites lose nothing",
			sink: sinkKafka,
			sim: simOptions{
				// A budget tagstream can live on (3 tokens x 3000 an hour), but token #0 is also spent by another
				// client during the run, so the API answers it 503 OAuthRateLimitException (the seed's answer).
				RequestsPerHour: 3000,
				Verifiers:       4,
				Tags: []testenv.TagConfig{
					{Name: "sunset", Rate: 3, Initial: 20},
					{Name: "coffee", Rate: 1, Initial: 5},
					{Name: "東京", Rate: 0.5},
					{Name: "quiet_tag", Rate: 0.1},
				},
			},
			run: run503Storms,
		},
		{
			name: "a revoked token is retired and the other tokens keep going",
			sink: sinkJetStream,
			run:  runRevokedToken,
		},
		{
			name: "the API down for 30 seconds loses nothing",
			sink: sinkJetStream,
			run:  runAPIDown,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline(t, pipelineOptions{Sink: tc.sink, Sim: tc.sim})
			p.start()
			tc.run(t, p)
		})
	}
}

func run503Storms(t *testing.T, p *pipeline) {
	ctx := t.Context()
	now := time.Now()
	p.sim.SetFaults(testenv.Faults{Schedule: []testenv.ScheduledFault{
		{Kind: testenv.FaultDown503HTML, At: now.Add(2 * time.Second), For: 3 * time.Second},
		{Kind: testenv.FaultDown503Envelope, At: now.Add(7 * time.Second), For: 3 * time.Second},
	}})
	spent := spendToken(t, p.sim, 0)
	t.Logf("another client spent token #0 with %d requests", spent)
	limitedBefore := p.sim.credentialStats(t, 0).Limited
	hold(ctx, 12*time.Second-time.Since(now))
	// Then a storm of random 503s of both kinds and some 429s, while a burst arrives.
	p.sim.SetFaults(testenv.Faults{Down503HTML: 0.2, Down503Envelope: 0.2, RateLimit429: 0.1})
	p.sim.Post("sunset", 60)
	hold(ctx, 6*time.Second)
	p.sim.SetFaults(testenv.Faults{})
	st := p.sim.Stats()
	t.Logf("simulator outcomes: %v", st.ByOutcome)
	for _, o := range []string{"fault_" + testenv.FaultDown503HTML, "fault_" + testenv.FaultDown503Envelope, "fault_" + testenv.FaultRateLimit429} {
		if st.ByOutcome[o] == 0 {
			t.Errorf("the simulator answered no %s: the test did not exercise what it claims", o)
		}
	}
	if tagstreamLimited := p.sim.credentialStats(t, 0).Limited - limitedBefore; tagstreamLimited == 0 {
		t.Errorf("tagstream never met the spent token's limit: the test did not exercise it")
	} else {
		t.Logf("tagstream met token #0's limit %d times", tagstreamLimited)
	}
	p.finish()
}

// spendToken uses tagstream's i-th token (as another client sharing it would) until the API answers over the
// limit, and returns the number of requests it took.
func spendToken(t *testing.T, s *sim, i int) int {
	t.Helper()
	client := s.Client()
	u := s.URL() + "/tags/coffee?access_token=" + url.QueryEscape(s.tokens[i])
	// Faulted answers (the storm runs meanwhile) do not count against the limit, and how many of the attempts
	// fall into a storm depends on the machine's speed: bound the requests the simulator counted, not the attempts.
	limit := int64(2*s.opts.RequestsPerHour + 100)
	for n := 1; ; n++ {
		resp, err := client.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		st := s.credentialStats(t, i)
		switch {
		case st.Limited > 0:
			return n
		case st.Requests > limit:
			t.Fatalf("token still not over its limit after %d counted requests (%d attempts)", st.Requests, n)
		case n > 100*s.opts.RequestsPerHour:
			t.Fatalf("token still not over its limit after %d attempts (%d counted)", n, st.Requests)
		}
	}
}

func runRevokedToken(t *testing.T, p *pipeline) {
	ctx := t.Context()
	hold(ctx, 4*time.Second)
	before := p.sim.Stats()
	if before.Credentials[0].Requests == 0 {
		t.Fatalf("token #0 was not used before its revocation; the test would prove nothing")
	}
	p.sim.RevokeToken(p.sim.tokens[0])
	revoked := time.Now()
	hold(ctx, 8*time.Second)
	after := p.sim.Stats()
	retired, err := p.ts.metric("tagstream_tokens_retired_total")
	if err != nil {
		t.Errorf("metrics: %v", err)
	} else if retired != 1 {
		t.Errorf("tagstream_tokens_retired_total = %v, want 1", retired)
	}
	if !p.ts.proc.running() {
		t.Fatalf("tagstream exited (status %d) after one of three tokens was revoked", p.ts.proc.exitCode())
	}
	late := after.Credentials[0].Requests - before.Credentials[0].Requests
	t.Logf("revoked token #0 at %s: %d requests with it afterwards; tokens #1, #2 served %d and %d more",
		revoked.Format("15:04:05.000"), late,
		after.Credentials[1].Requests-before.Credentials[1].Requests,
		after.Credentials[2].Requests-before.Credentials[2].Requests)
	if late > 10 {
		t.Errorf("the revoked token was used %d more times; it should be retired after its first rejection", late)
	}
	for i := 1; i <= 2; i++ {
		if after.Credentials[i].Requests <= before.Credentials[i].Requests {
			t.Errorf("token #%d served no request after token #0 was revoked", i)
		}
	}
	p.finish()
}

func runAPIDown(t *testing.T, p *pipeline) {
	ctx := t.Context()
	hold(ctx, 3*time.Second)
	downBefore := p.sim.Stats().ByOutcome["down"]
	from := time.Now()
	p.sim.Down(30 * time.Second)
	hold(ctx, 30*time.Second)
	attempts := p.sim.Stats().ByOutcome["down"] - downBefore
	t.Logf("API down 30 s from %s: %d requests refused meanwhile", from.Format("15:04:05.000"), attempts)
	if attempts == 0 {
		t.Errorf("no request reached the simulator while it was down: the test did not exercise the outage")
	}
	if attempts > 600 {
		t.Errorf("%d requests in 30 s while the API was down: the client should back off, not spin", attempts)
	}
	if !p.ts.proc.running() {
		t.Fatalf("tagstream exited (status %d) while the API was down", p.ts.proc.exitCode())
	}
	p.finish()
}
