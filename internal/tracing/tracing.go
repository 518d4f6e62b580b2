// Package tracing sets up OpenTelemetry traces for a role of the process:
// off unless the standard OTEL_* variables ask for them, exported over
// OTLP/HTTP. It also carries trace context where dashcache's own messages
// go: a fill task's headers, and a fill notification.
//
// Each role gets a tracer provider of its own, passed down to its parts
// (none is set as OpenTelemetry's global): tests run several roles in one
// process.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// Enabled reports whether getenv asks for traces: OTEL_TRACES_EXPORTER=otlp,
// or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with no exporter named; never with
// OTEL_SDK_DISABLED=true.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch exporter := getenv("OTEL_TRACES_EXPORTER"); exporter {
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return exporter == "otlp"
	}
}

// Check returns an error naming the setting when getenv asks for traces in
// a way this binary cannot export: an exporter other than otlp or none, or
// OTLP over gRPC.
func Check(getenv func(string) string) error {
	if e := getenv("OTEL_TRACES_EXPORTER"); e != "" && e != "otlp" && e != "none" {
		return fmt.Errorf("OTEL_TRACES_EXPORTER: want otlp or none, got %q", e)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(name); p != "" && p != "http/protobuf" {
			return fmt.Errorf("%s: this binary exports OTLP over HTTP: want http/protobuf, got %q", name, p)
		}
	}
	return nil
}

// New returns the tracer provider of a role, or nil when getenv does not
// ask for traces (Enabled). It exports over OTLP/HTTP as the
// OTEL_EXPORTER_OTLP_* variables say, samples as OTEL_TRACES_SAMPLER says,
// and names the service OTEL_SERVICE_NAME (default dashcache) with the
// attribute dashcache.role. The SDK reads those variables from the
// process's environment. Shutdown flushes what is left.
func New(ctx context.Context, getenv func(string) string, role string) (*sdktrace.TracerProvider, error) {
	if !Enabled(getenv) {
		return nil, nil
	}
	if err := Check(getenv); err != nil {
		return nil, err
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: the OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "dashcache"), attribute.String("dashcache.role", role)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: the resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}

// propagator is W3C Trace Context: traceparent and tracestate.
var propagator = propagation.TraceContext{}

// Propagator is the propagator of requests and tasks.
func Propagator() propagation.TextMapPropagator { return propagator }

// Inject writes the trace context of ctx's span into headers (a task's),
// if it has one.
func Inject(ctx context.Context, headers map[string]string) {
	propagator.Inject(ctx, propagation.MapCarrier(headers))
}

// Extract returns the span context that Inject wrote into headers; invalid
// if none.
func Extract(headers map[string]string) trace.SpanContext {
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), propagation.MapCarrier(headers)))
}

// Traceparent returns the W3C traceparent of ctx's span, or "" when it has
// none or it is not sampled (nothing would receive it).
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	h := map[string]string{}
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.MapCarrier(h))
	return h["traceparent"]
}

// ParseTraceparent returns the span context of a W3C traceparent; invalid
// if it is not one.
func ParseTraceparent(s string) trace.SpanContext {
	return Extract(map[string]string{"traceparent": s})
}

// Log returns log with the trace_id and span_id of ctx's span, if it has
// one, so that its lines can be found from the trace.
func Log(ctx context.Context, log zerolog.Logger) zerolog.Logger {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return log
	}
	return log.With().Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String()).Logger()
}

// Tracer returns the tracer of tp for a part of dashcache; nil tp (tracing
// off) gives a tracer that records nothing.
func Tracer(tp trace.TracerProvider, part string) trace.Tracer {
	if tp == nil {
		return noopTracer
	}
	return tp.Tracer("github.com/dashcache/dashcache/" + part)
}

var noopTracer = noop.NewTracerProvider().Tracer("")

// InTracesOnly returns a tracer provider that makes spans of tp only inside
// a trace (when the context has a span): the Redis commands of a request
// or a fill are traced, those of the queue's polling and the clock are not.
func InTracesOnly(tp trace.TracerProvider) trace.TracerProvider { return inTraces{tp: tp} }

type inTraces struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p inTraces) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return inTracesTracer{t: p.tp.Tracer(name, opts...)}
}

type inTracesTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (t inTracesTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx) // records nothing
	}
	return t.t.Start(ctx, name, opts...)
}
