package tpm

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
)

type asn1OID = asn1.ObjectIdentifier

// TCG attributes of an EK certificate's subject alternative name (TCG EK
// Credential Profile, section 3.2.9).
var tcgAttributeNames = map[string]string{
	"2.23.133.2.1": "manufacturer",
	"2.23.133.2.2": "model",
	"2.23.133.2.3": "version",
}

// tcgAttributes returns manufacturer:, model: and version: selector values
// from the directory names of c's subject alternative name, or nothing if
// it has none or they do not parse.
func tcgAttributes(c *x509.Certificate) []string {
	var out []string
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) > 0 {
			return nil
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 4 { // directoryName
				continue
			}
			var rdns pkix.RDNSequence
			if rest, err := asn1.Unmarshal(n.Bytes, &rdns); err != nil || len(rest) > 0 {
				continue
			}
			for _, rdn := range rdns {
				for _, atv := range rdn {
					name, ok := tcgAttributeNames[atv.Type.String()]
					if v, isString := atv.Value.(string); ok && isString {
						out = append(out, name+":"+v)
					}
				}
			}
		}
	}
	return out
}

// jsonMarshal is json.Marshal.
var jsonMarshal = json.Marshal
