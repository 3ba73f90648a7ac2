package dashboard

import (
	"time"

	"errors"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func durationOf(d time.Duration) config.Duration { return config.Duration{Duration: d} }
