package workloadpb

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// wireTable is section B of shared/spec/workload-api.md: every message with
// every field's name, number and type. A change to spiffekit_workload.proto that breaks
// wire compatibility fails here.
var wireTable = map[proto.Message][]string{
	&X509SVIDRequest{}:         nil,
	&X509SVIDResponse{}:        {"svids=1 repeated message X509SVID", "crl=2 repeated bytes", "federated_bundles=3 map<string,bytes>"},
	&X509SVID{}:                {"spiffe_id=1 string", "x509_svid=2 bytes", "x509_svid_key=3 bytes", "bundle=4 bytes", "hint=5 string"},
	&X509BundlesRequest{}:      nil,
	&X509BundlesResponse{}:     {"crl=1 repeated bytes", "bundles=2 map<string,bytes>"},
	&JWTSVIDRequest{}:          {"audience=1 repeated string", "spiffe_id=2 string"},
	&JWTSVIDResponse{}:         {"svids=1 repeated message JWTSVID"},
	&JWTSVID{}:                 {"spiffe_id=1 string", "svid=2 string", "hint=3 string"},
	&JWTBundlesRequest{}:       nil,
	&JWTBundlesResponse{}:      {"bundles=1 map<string,bytes>"},
	&ValidateJWTSVIDRequest{}:  {"audience=1 string", "svid=2 string"},
	&ValidateJWTSVIDResponse{}: {"spiffe_id=1 string", "claims=2 message google.protobuf.Struct"},
	&WITSVIDRequest{}:          {"spiffe_id=1 string"},
	&WITSVIDResponse{}:         {"svids=1 repeated message WITSVID"},
	&WITSVID{}:                 {"spiffe_id=1 string", "wit_svid=2 string", "wit_svid_key=3 string", "hint=4 string"},
	&WITBundlesRequest{}:       nil,
	&WITBundlesResponse{}:      {"bundles=1 map<string,string>"},
}

func describe(fd protoreflect.FieldDescriptor) string {
	var b strings.Builder
	b.WriteString(string(fd.Name()))
	b.WriteString("=")
	b.WriteString(strconv.Itoa(int(fd.Number())))
	switch {
	case fd.IsMap():
		b.WriteString(" map<" + fd.MapKey().Kind().String() + "," + fd.MapValue().Kind().String() + ">")
		return b.String()
	case fd.Cardinality() == protoreflect.Repeated:
		b.WriteString(" repeated")
	}
	b.WriteString(" " + fd.Kind().String())
	if fd.Kind() == protoreflect.MessageKind {
		name := string(fd.Message().FullName())
		name = strings.TrimPrefix(name, "spiffekit.internal.workload.")
		b.WriteString(" " + name)
	}
	return b.String()
}

func TestWireContract(t *testing.T) {
	for msg, want := range wireTable {
		d := msg.ProtoReflect().Descriptor()
		t.Run(string(d.Name()), func(t *testing.T) {
			var got []string
			for i := 0; i < d.Fields().Len(); i++ {
				fd := d.Fields().Get(i)
				assert.False(t, fd.HasPresence() && fd.Kind() != protoreflect.MessageKind, "proto3 fields have no presence")
				got = append(got, describe(fd))
			}
			assert.Equal(t, want, got)
		})
	}
}

// TestGettersAndRoundTrip fills every field through reflection, checks that
// the generated getters return it, that a nil message's getters return zero
// values, and that the message survives the wire.
func TestGettersAndRoundTrip(t *testing.T) {
	for msg := range wireTable {
		name := string(msg.ProtoReflect().Descriptor().Name())
		t.Run(name, func(t *testing.T) {
			m := msg.ProtoReflect().New()
			fields := m.Descriptor().Fields()
			for i := 0; i < fields.Len(); i++ {
				fd := fields.Get(i)
				switch {
				case fd.IsMap():
					m.Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), sample(m.Mutable(fd).Map().NewValue(), fd.MapValue()))
				case fd.IsList():
					l := m.Mutable(fd).List()
					l.Append(sample(l.NewElement(), fd))
				default:
					m.Set(fd, sample(m.NewField(fd), fd))
				}
			}
			full := m.Interface()

			wire, err := proto.Marshal(full)
			require.NoError(t, err)
			again := msg.ProtoReflect().New().Interface()
			require.NoError(t, proto.Unmarshal(wire, again))
			assert.True(t, proto.Equal(full, again))
			if fields.Len() > 0 {
				assert.Contains(t, again.(fmt.Stringer).String(), string(fields.Get(0).Name()))
			}
			// The legacy descriptor accessor points at this message's index.
			_, path := again.(interface{ Descriptor() ([]byte, []int) }).Descriptor()
			assert.Equal(t, []int{m.Descriptor().Index()}, path)

			// Every GetX method returns the field X, and zero on a nil message.
			v := reflect.ValueOf(again)
			nilMsg := reflect.Zero(v.Type())
			for i := 0; i < fields.Len(); i++ {
				fd := fields.Get(i)
				getter := "Get" + goName(string(fd.Name()))
				method := v.MethodByName(getter)
				require.True(t, method.IsValid(), "%s has no %s", name, getter)
				got := method.Call(nil)[0]
				assert.False(t, got.IsZero(), "%s.%s() is zero on a full message", name, getter)
				assert.True(t, nilMsg.MethodByName(getter).Call(nil)[0].IsZero(), "%s.%s() on nil", name, getter)
			}
			again.(interface{ Reset() }).Reset()
			assert.True(t, proto.Equal(msg.ProtoReflect().New().Interface(), again))
		})
	}
}

func sample(v protoreflect.Value, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("s")
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{1})
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Struct" {
			s, _ := structpb.NewStruct(map[string]any{"sub": "spiffe://example.org/w"})
			return protoreflect.ValueOfMessage(s.ProtoReflect())
		}
		m := v.Message()
		f := m.Descriptor().Fields().ByNumber(1)
		m.Set(f, protoreflect.ValueOfString("spiffe://example.org/w"))
		return protoreflect.ValueOfMessage(m)
	}
	panic("unexpected kind " + fd.Kind().String())
}

// goName converts a proto field name to the generated Go name.
func goName(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "")
}
