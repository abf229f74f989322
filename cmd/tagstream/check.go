package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

const checkHelp = `
Validate the configuration, then reach the API (one request with the first token, reporting its budget but never
the token) and the broker (server and stream or topic metadata) without publishing anything.

Exit status: 0 everything reachable, 1 the API or the broker failed a check, 2 the configuration is invalid.`

func runCheck(c *cli, args []string) int {
	fs := c.newFlagSet("check", "[flags]", checkHelp)
	loader := config.NewLoader(fs, config.GroupAll, config.Needs{Tags: true, Tokens: true}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.configFailure(err)
	}
	red := newRedactor(cfg)
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.stdout, "warn  %s\n", w)
	}
	file := "no config file"
	if cfg.ConfigFile != "" {
		file = "file " + cfg.ConfigFile
	}
	fmt.Fprintf(c.stdout, "ok    config: %s, %s, %s, sink %s\n", file, plural(len(cfg.Tags), "tag"), plural(len(cfg.Credentials), "token"), cfg.Sink)

	ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout+2*cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	ok := true
	report := func(name string, detail string, err error) {
		if err != nil {
			ok = false
			fmt.Fprintf(c.stdout, "FAIL  %s: %s\n", name, red.String(err.Error()))
			return
		}
		fmt.Fprintf(c.stdout, "ok    %s: %s\n", name, red.String(detail))
	}
	detail, err := checkAPI(ctx, cfg)
	report("api", detail, err)
	detail, err = checkSink(ctx, cfg)
	report("sink", detail, err)
	detail, err = checkState(ctx, cfg)
	report("state", detail, err)
	if !ok {
		return exitFailure
	}
	return exitOK
}

// checkAPI makes one tag request with the first credential and describes the answer and the budget headers.
func checkAPI(ctx context.Context, cfg *config.Config) (string, error) {
	client, err := apiHTTPClient(cfg)
	if err != nil {
		return "", err
	}
	cred := cfg.Credentials[0]
	tag := cfg.Tags[0]
	q := url.Values{"count": {"1"}}
	if cred.ClientID {
		q.Set("client_id", cred.Value)
	} else {
		q.Set("access_token", cred.Value)
	}
	endpoint := cfg.APIURL + "/tags/" + url.PathEscape(tag) + "/media/recent"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("build request for %s: %s", endpoint, httpProblem(err))
	}
	req.Header.Set("User-Agent", "tagstream/"+Version())
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %s", endpoint, httpProblem(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", fmt.Errorf("GET %s: read body: %s", endpoint, httpProblem(err))
	}
	who := fmt.Sprintf("token 1 (fingerprint %s)", poller.Fingerprint(cred.Value))
	if cred.ClientID {
		who = fmt.Sprintf("client id 1 (fingerprint %s)", poller.Fingerprint(cred.Value))
	}
	budget := "no rate-limit headers"
	if lim, rem := resp.Header.Get("X-Ratelimit-Limit"), resp.Header.Get("X-Ratelimit-Remaining"); lim != "" || rem != "" {
		budget = fmt.Sprintf("budget %s of %s left", orDash(rem), orDash(lim))
	}
	page, err := schema.DecodePage(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err != nil {
		var apiErr *schema.APIError
		if errors.As(err, &apiErr) && apiErr.TokenInvalid() {
			return "", fmt.Errorf("%s with %s: the token is invalid or revoked: %v", endpoint, who, err)
		}
		return "", fmt.Errorf("%s with %s: HTTP %d: %v (%s)", endpoint, who, resp.StatusCode, err, budget)
	}
	return fmt.Sprintf("%s answered HTTP %d for tag %q with %d media; %s: %s", cfg.APIURL, resp.StatusCode, tag, len(page.Media), who, budget), nil
}

func orDash(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// checkSink reaches the broker and reads its metadata, or checks the output path.
func checkSink(ctx context.Context, cfg *config.Config) (string, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch cfg.Sink {
	case config.SinkJetStream, config.SinkNATS:
		nc, err := publisher.Connect(ctx, natsConnConfig(cfg), logger)
		if err != nil {
			return "", err
		}
		defer nc.Close()
		rtt, err := nc.RTT()
		if err != nil {
			return "", fmt.Errorf("nats %s: %v", nc.ConnectedUrlRedacted(), err)
		}
		server := fmt.Sprintf("nats server %s (%s, version %s, rtt %s)", nc.ConnectedServerName(), nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion(), rtt.Round(time.Microsecond))
		if cfg.Sink == config.SinkNATS {
			return server + "; core NATS publishes are at-most-once", nil
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return "", fmt.Errorf("%s: %v", server, err)
		}
		if _, err := js.AccountInfo(ctx); err != nil {
			return "", fmt.Errorf("%s: JetStream is not available: %v", server, err)
		}
		subject := publisher.Subject(cfg.SubjectPrefix, cfg.Tags[0])
		name, err := js.StreamNameBySubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound) && cfg.CreateStream:
			return fmt.Sprintf("%s; no stream covers %s yet: run creates stream %s on %s.>", server, subject, cfg.Stream, cfg.SubjectPrefix), nil
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return "", fmt.Errorf("%s: no stream covers %s and create-stream is off", server, subject)
		case err != nil:
			return "", fmt.Errorf("%s: look up the stream of %s: %v", server, subject, err)
		}
		st, err := js.Stream(ctx, name)
		if err != nil {
			return "", fmt.Errorf("%s: stream %s: %v", server, name, err)
		}
		info := st.CachedInfo()
		return fmt.Sprintf("%s; stream %s covers %s (%d messages, duplicate window %s)", server, name, subject, info.State.Msgs, info.Config.Duplicates), nil
	case config.SinkKafka:
		brokers, parts, missing, err := kafkaTopicInfo(ctx, cfg, cfg.KafkaTopic)
		if err != nil {
			return "", fmt.Errorf("kafka: %v", err)
		}
		switch {
		case missing && cfg.KafkaCreateTopic:
			return fmt.Sprintf("kafka cluster of %d brokers; topic %s does not exist yet: run creates it", brokers, cfg.KafkaTopic), nil
		case missing:
			return "", fmt.Errorf("kafka cluster of %d brokers: topic %s does not exist and kafka-create-topic is off", brokers, cfg.KafkaTopic)
		}
		return fmt.Sprintf("kafka cluster of %d brokers; topic %s has %d partitions", brokers, cfg.KafkaTopic, parts), nil
	case config.SinkFile:
		return fmt.Sprintf("events will be appended to %s", cfg.Output), nil
	default:
		return "events will be written to stdout", nil
	}
}

// checkState describes the checkpoint store without opening it (a running tagstream holds its lock).
func checkState(ctx context.Context, cfg *config.Config) (string, error) {
	switch cfg.CheckpointStore {
	case config.StoreMemory:
		return "memory store: cursors are lost on exit", nil
	case config.StoreJetStreamKV:
		nc, err := publisher.Connect(ctx, natsConnConfig(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return "", err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return "", err
		}
		kv, err := js.KeyValue(ctx, cfg.KVBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Sprintf("KV bucket %s does not exist yet: run creates it", cfg.KVBucket), nil
		}
		if err != nil {
			return "", fmt.Errorf("KV bucket %s: %v", cfg.KVBucket, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return "", fmt.Errorf("KV bucket %s: %v", cfg.KVBucket, err)
		}
		return fmt.Sprintf("KV bucket %s holds %d values", cfg.KVBucket, st.Values()), nil
	default:
		path := filepath.Join(cfg.StateDir, checkpointFile)
		st, err := os.Stat(path)
		switch {
		case err == nil:
			return fmt.Sprintf("checkpoint file %s (%d bytes)", path, st.Size()), nil
		case errors.Is(err, os.ErrNotExist):
			return fmt.Sprintf("checkpoint file %s does not exist yet: run creates it (first start: %s)", path, cfg.Start), nil
		default:
			return "", fmt.Errorf("checkpoint file %s: %v", path, strings.TrimPrefix(err.Error(), "stat "+path+": "))
		}
	}
}

// checkpointFile is the name of the bbolt file inside state-dir.
const checkpointFile = "checkpoints.db"

// plural returns "1 tag", "2 tags".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
