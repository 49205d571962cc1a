// Package pbtest checks generated protobuf code for the wire packages'
// tests: that every field is where the wire contract says, that every
// generated getter returns its field (and zero on a nil message), and that
// every message survives the wire.
package pbtest

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

// Describe writes a field as the wire tables of the specs do:
// "name=number [repeated] kind [message]" or "name=number map<k,v>".
// Message names lose the given package prefix.
func Describe(fd protoreflect.FieldDescriptor, pkg string) string {
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
		b.WriteString(" " + strings.TrimPrefix(string(fd.Message().FullName()), pkg))
	}
	return b.String()
}

// WireContract checks each message's fields against its table row.
func WireContract(t *testing.T, table map[proto.Message][]string, pkg string) {
	t.Helper()
	for msg, want := range table {
		d := msg.ProtoReflect().Descriptor()
		t.Run(string(d.Name()), func(t *testing.T) {
			var got []string
			for i := 0; i < d.Fields().Len(); i++ {
				fd := d.Fields().Get(i)
				assert.False(t, fd.HasPresence() && fd.Kind() != protoreflect.MessageKind, "proto3 fields have no presence")
				got = append(got, Describe(fd, pkg))
			}
			assert.Equal(t, want, got)
		})
	}
}

// GettersAndRoundTrip fills every field of each message through
// reflection, checks that the generated getters return it, that a nil
// message's getters return zero values, that the message survives the wire,
// and that Reset empties it.
func GettersAndRoundTrip(t *testing.T, msgs []proto.Message) {
	t.Helper()
	for _, msg := range msgs {
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
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(7)
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Struct" {
			s, _ := structpb.NewStruct(map[string]any{"sub": "spiffe://example.org/w"})
			return protoreflect.ValueOfMessage(s.ProtoReflect())
		}
		m := v.Message()
		for i := 0; i < m.Descriptor().Fields().Len(); i++ {
			f := m.Descriptor().Fields().Get(i)
			if !f.IsList() && !f.IsMap() && f.Kind() != protoreflect.MessageKind {
				m.Set(f, sample(m.NewField(f), f))
			}
		}
		return protoreflect.ValueOfMessage(m)
	}
	panic("unexpected kind " + fd.Kind().String())
}

// goName converts a proto field name to the generated Go name.
func goName(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p == "" {
			continue
		}
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "")
}
