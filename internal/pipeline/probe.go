package pipeline

import (
	"context"
	"fmt"

	"github.com/tagstream/tagstream/poller"
)

// probeAPI makes one request for the first tag with the first token of pc, through the poller's own client
// (poller.Probe: the transport, TLS settings, redirect refusal and redaction polls use), and describes the answer
// and the budget headers. The token never appears in the result.
func probeAPI(ctx context.Context, pc poller.Config) (string, error) {
	res, err := poller.Probe(ctx, pc)
	if err != nil {
		return "", err
	}
	who := "token 1"
	if pc.Tokens[0].ClientID {
		who = "client id 1"
	}
	budget := "no rate-limit headers"
	if res.Limit >= 0 || res.Remaining >= 0 {
		budget = fmt.Sprintf("budget %s of %s left", orDash(res.Remaining), orDash(res.Limit))
	}
	return fmt.Sprintf("%s answered HTTP %d for tag %q with %d media; %s (fingerprint %s): %s",
		pc.BaseURL, res.Status, pc.Tags[0], res.Media, who, res.Fingerprint, budget), nil
}

func orDash(n int) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}
