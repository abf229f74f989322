package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnConfig configures a NATS connection for the JetStream and core NATS publishers. The zero value connects to
// nats://127.0.0.1:4222 without credentials. At most one of User/Password, Token, NKeySeedFile and CredsFile may
// be set.
type ConnConfig struct {
	// URLs are the servers to try; default nats://127.0.0.1:4222. Credentials in a URL are accepted but never
	// logged.
	URLs []string
	// Name is the connection name shown by the server; default "tagstream".
	Name string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKeySeedFile authenticates with the nkey seed in this file.
	NKeySeedFile string
	// CredsFile authenticates with a decentralised-auth credentials file (user JWT and nkey seed).
	CredsFile string
	// TLS configures TLS (CA, client certificate).
	TLS TLSConfig
	// ConnectTimeout bounds the initial dial of each server; default 5 s.
	ConnectTimeout time.Duration
	// ReconnectWait is the first reconnect delay; it doubles per failed attempt (with jitter) up to
	// MaxReconnectWait. Defaults 250 ms and 10 s. The connection reconnects forever.
	ReconnectWait, MaxReconnectWait time.Duration
	// ReconnectBufSize bounds the bytes buffered while reconnecting (publishes beyond it fail fast and are
	// retried by the publisher); default 8 MiB.
	ReconnectBufSize int
}

// validate checks the fields and resolves defaults.
func (c ConnConfig) withDefaults() (ConnConfig, error) {
	if len(c.URLs) == 0 {
		c.URLs = []string{nats.DefaultURL}
	}
	for i, u := range c.URLs {
		if strings.TrimSpace(u) == "" {
			return c, configError(fmt.Sprintf("URLs[%d]", i), "empty URL")
		}
	}
	if c.Name == "" {
		c.Name = "tagstream"
	}
	n := 0
	if c.User != "" || c.Password != "" {
		n++
		if c.User == "" {
			return c, configError("User", "a Password needs a User")
		}
	}
	for _, s := range []string{c.Token, c.NKeySeedFile, c.CredsFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return c, configError("User/Token/NKeySeedFile/CredsFile", "set at most one way to authenticate")
	}
	if c.ConnectTimeout < 0 || c.ReconnectWait < 0 || c.MaxReconnectWait < 0 || c.ReconnectBufSize < 0 {
		return c, configError("ConnectTimeout/ReconnectWait/MaxReconnectWait/ReconnectBufSize", "must not be negative")
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 250 * time.Millisecond
	}
	if c.MaxReconnectWait == 0 {
		c.MaxReconnectWait = 10 * time.Second
	}
	if c.MaxReconnectWait < c.ReconnectWait {
		return c, configError("MaxReconnectWait", "%v is below ReconnectWait %v", c.MaxReconnectWait, c.ReconnectWait)
	}
	if c.ReconnectBufSize == 0 {
		c.ReconnectBufSize = 8 << 20
	}
	return c, nil
}

// Options returns the nats.go options for c (credentials, TLS, reconnect forever with exponential backoff and
// jitter, handlers that log through logger without credentials).
func (c ConnConfig) Options(logger *slog.Logger) ([]nats.Option, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(c.ReconnectBufSize),
		nats.CustomReconnectDelay(reconnectDelay(c.ReconnectWait, c.MaxReconnectWait)),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil || nc.IsClosed() {
				return // a deliberate Close: nothing went wrong
			}
			logger.Warn("nats disconnected", "server", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Warn("nats async error", "err", err)
		}),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, configError("NKeySeedFile", "%v", err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	tlsCfg, err := c.TLS.build("TLS")
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, nats.Secure(tlsCfg))
	}
	return opts, nil
}

// reconnectDelay doubles the delay per attempt from first up to max, with full jitter on the upper half.
func reconnectDelay(first, maxWait time.Duration) nats.ReconnectDelayHandler {
	return func(attempts int) time.Duration {
		d := first
		for i := 1; i < attempts && d < maxWait; i++ {
			d *= 2
		}
		d = min(d, maxWait)
		return d/2 + rand.N(d/2+1)
	}
}

// Connect dials NATS as configured. Errors never hold a password or token: URLs are redacted.
func Connect(ctx context.Context, cfg ConnConfig, logger *slog.Logger) (*nats.Conn, error) {
	opts, err := cfg.Options(logger)
	if err != nil {
		return nil, err
	}
	cfg, _ = cfg.withDefaults()
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("publisher: connect to nats %s: %w", redactURLs(cfg.URLs), redactErr(r.err, cfg))
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("publisher: connect to nats %s: %w", redactURLs(cfg.URLs), ctx.Err())
	}
}

// redactURLs renders urls without user info.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			if strings.Contains(s, "@") {
				out[i] = "<redacted>"
			} else {
				out[i] = s
			}
			continue
		}
		u.User = url.User("redacted")
		out[i] = u.String()
	}
	return strings.Join(out, ",")
}

// redactErr replaces an error whose text holds a secret of cfg by one with every such secret masked, that keeps
// errors.Is working through the sentinel nats errors.
func redactErr(err error, cfg ConnConfig) error {
	msg := err.Error()
	redacted := msg
	secrets := []string{cfg.Password, cfg.Token}
	for _, u := range cfg.URLs {
		if pu, perr := url.Parse(u); perr == nil && pu.User != nil {
			secrets = append(secrets, pu.User.String())
			if p, ok := pu.User.Password(); ok {
				secrets = append(secrets, p)
			}
		}
	}
	for _, s := range secrets {
		if s != "" {
			redacted = strings.ReplaceAll(redacted, s, "<redacted>")
		}
	}
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: errors.Unwrap(err)}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
