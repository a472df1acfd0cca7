# -*- test-case-name: tests.sip.test_message -*-
"""
The pieces of the RFC 3261 section 25 ABNF that the parser needs, as
character classes and compiled regular expressions.

All grammar lives here so that the parser modules read as procedures and the
rules can be checked against the RFC in one place (h11's C{_abnf.py} habit).
Each rule quotes the ABNF it implements.  Two rules of thumb keep every pattern
free of catastrophic backtracking on hostile input:

  - repetitions only ever contain alternatives that cannot match the same
    character (for example C{[unreserved]} versus C{%HH}), so a failing match
    is abandoned in linear time;
  - line structure (CRLF, folding, commas between list elements) is handled
    by plain string operations in the parser, never by regexes.

Regexes that are matched against whole fields are anchored with C{\\Z} and
used with C{match}; the parser bounds the size of every field before it gets
here.
"""

from __future__ import annotations

import re

__all__ = [
    "ALPHANUM",
    "MARK",
    "UNRESERVED",
    "TOKEN_CHARS",
    "ESCAPED",
    "TOKEN",
    "QUOTED_STRING",
    "SCHEME",
    "USER",
    "PASSWORD",
    "PARAM_NAME",
    "PARAM_VALUE",
    "HEADER_NAME_CHARS",
    "HEADER_VALUE_CHARS",
    "HOSTNAME",
    "IPV6_REFERENCE",
    "ABSOLUTE_URI_REST",
    "TELEPHONE_SUBSCRIBER",
    "REQUEST_LINE",
    "STATUS_LINE",
    "SIP_VERSION",
    "REASON_PHRASE",
    "GENERIC_PARAM",
    "VIA_PARM",
    "CSEQ",
    "CALL_ID",
    "SIP_DATE",
    "DISPLAY_NAME_TOKENS",
    "OPTION_TAG",
    "DIGITS",
    "CONTROL_CHARS",
]

# -- RFC 3261 25.1 Basic Rules ------------------------------------------------
#
#   alphanum  =  ALPHA / DIGIT
ALPHANUM = "A-Za-z0-9"

#   mark        =  "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
MARK = r"\-_.!~*'()"

#   unreserved  =  alphanum / mark
UNRESERVED = ALPHANUM + MARK

#   token       =  1*(alphanum / "-" / "." / "!" / "%" / "*"
#                  / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = ALPHANUM + r"\-.!%*_+`'~"
TOKEN = re.compile(rf"[{TOKEN_CHARS}]+\Z")

#   escaped     =  "%" HEXDIG HEXDIG
ESCAPED = r"%[0-9A-Fa-f]{2}"

#   quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
#   qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E
#                     / UTF8-NONASCII
#   quoted-pair    =  "\" (%x00-09 / %x0B-0C
#                     / %x0E-7F)
#
# The parser unfolds LWS before matching, and CR/LF cannot survive header
# splitting, so "anything but DQUOTE or backslash, or a backslash pair" is
# exact.  The two alternatives never match the same character.
QUOTED_STRING_PATTERN = r'"(?:[^"\\]|\\[\s\S])*"'
QUOTED_STRING = re.compile(QUOTED_STRING_PATTERN + r"\Z")

# -- RFC 3261 25.1 SIP URI ----------------------------------------------------
#
# RFC 3986 3.1 (absoluteURI in RFC 3261 refers to RFC 2396, same rule):
#   scheme      =  ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")

#   user             =  1*( unreserved / escaped / user-unreserved )
#   user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER_UNRESERVED = "&=+$,;?/"
USER = re.compile(rf"(?:[{UNRESERVED}{USER_UNRESERVED}]|{ESCAPED})+\Z")

#   password         =  *( unreserved / escaped /
#                       "&" / "=" / "+" / "$" / "," )
PASSWORD_UNRESERVED = "&=+$,"
PASSWORD = re.compile(rf"(?:[{UNRESERVED}{PASSWORD_UNRESERVED}]|{ESCAPED})*\Z")

#   other-param       =  pname [ "=" pvalue ]
#   pname             =  1*paramchar
#   pvalue            =  1*paramchar
#   paramchar         =  param-unreserved / unreserved / escaped
#   param-unreserved  =  "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAM_UNRESERVED = r"\[\]/:&+$"
PARAM_NAME = re.compile(rf"(?:[{UNRESERVED}{PARAM_UNRESERVED}]|{ESCAPED})+\Z")
PARAM_VALUE = PARAM_NAME

#   headers         =  "?" header *( "&" header )
#   header          =  hname "=" hvalue
#   hname           =  1*( hnv-unreserved / unreserved / escaped )
#   hvalue          =  *( hnv-unreserved / unreserved / escaped )
#   hnv-unreserved  =  "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNV_UNRESERVED = r"\[\]/?:+$"
HEADER_NAME_CHARS = re.compile(rf"(?:[{UNRESERVED}{HNV_UNRESERVED}]|{ESCAPED})+\Z")
HEADER_VALUE_CHARS = re.compile(rf"(?:[{UNRESERVED}{HNV_UNRESERVED}]|{ESCAPED})*\Z")

#   hostname         =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel      =  alphanum
#                       / alphanum *( alphanum / "-" ) alphanum
#   toplabel         =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
#   IPv4address    =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
#
# Only the character set is checked by regex; label structure (no empty
# labels, no leading or trailing "-", dotted quads in range) is checked by
# the URI module with string operations, which cannot backtrack.
HOSTNAME = re.compile(r"[A-Za-z0-9.\-]+\Z")

#   IPv6reference  =  "[" IPv6address "]"
# The address itself is validated with the standard library's ipaddress.
IPV6_REFERENCE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")

# RFC 2396 3 (RFC 3261 absoluteURI):
#   absoluteURI   = scheme ":" ( hier_part | opaque_part )
#   uric          = reserved | unreserved | escaped
# Used for URIs whose scheme we do not implement: accept any run of uric.
ABSOLUTE_URI_REST = re.compile(rf"(?:[{UNRESERVED};/?:@&=+$,\[\]#]|{ESCAPED})+\Z")

# RFC 3966 3 (tel URI), simplified to its character set:
#   global-number-digits = "+" *phonedigit DIGIT *phonedigit
#   local-number-digits  = *phonedigit-hex (HEXDIG / "*" / "#")
#                          *phonedigit-hex
#   phonedigit-hex       = HEXDIG / "*" / "#" / [ visual-separator ]
#   visual-separator     = "-" / "." / "(" / ")"
TELEPHONE_SUBSCRIBER = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+\Z")

# -- RFC 3261 25.1 Start lines ------------------------------------------------
#
#   Request-Line   =  Method SP Request-URI SP SIP-Version CRLF
#   Method         =  INVITEm / ACKm / OPTIONSm / BYEm
#                     / CANCELm / REGISTERm
#                     / extension-method
#   extension-method  =  token
#   SIP-Version    =  "SIP" "/" 1*DIGIT "." 1*DIGIT
#
# Exactly one SP between the elements and none at the end (RFC 4475 3.1.2.9
# and 3.1.2.10 reject anything else).  Request-URI has no whitespace at all
# (3.1.2.8).  Version digits are bounded to keep int() conversions cheap.
REQUEST_LINE = re.compile(
    rf"([{TOKEN_CHARS}]+) ([^\x00-\x20\x7f]+) ([Ss][Ii][Pp]/[0-9]{{1,9}}\.[0-9]{{1,9}})\Z"
)
SIP_VERSION = re.compile(r"[Ss][Ii][Pp]/[0-9]{1,9}\.[0-9]{1,9}\Z")

#   Status-Line     =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
#   Status-Code     =  Informational / Redirection / Success
#                      / Client-Error / Server-Error / Global-Failure
#                      / extension-code
#   extension-code  =  3DIGIT
#   Reason-Phrase   =  *(reserved / unreserved / escaped
#                      / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
#
# The SP before an empty Reason-Phrase is required by the ABNF; RFC 4475
# 3.1.1.13 allows a liberal receiver to accept its absence, and we do.
STATUS_LINE = re.compile(r"([Ss][Ii][Pp]/[0-9]{1,9}\.[0-9]{1,9}) ([0-9]{3})(?: (.*))?\Z", re.DOTALL)
# Reason-Phrase excludes every control character except HTAB.
REASON_PHRASE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*\Z")

# -- RFC 3261 25.1 Header fields ------------------------------------------------
#
#   generic-param  =  token [ EQUAL gen-value ]
#   gen-value      =  token / host / quoted-string
#   SEMI    =  SWS ";" SWS ; semicolon
#   EQUAL   =  SWS "=" SWS ; equal
#
# Matched repeatedly at a position by the header module: each match consumes
# one ";name[=value]" with its surrounding whitespace.  host is a subset of
# token apart from an IPv6reference, which is listed on its own, and so is a bare
# IPv6address (RFC 3261's received; RFC 5118 4.5: accept it with or without brackets).
GENERIC_PARAM = re.compile(
    rf"[ \t]*;[ \t]*([{TOKEN_CHARS}]+)"
    rf"(?:[ \t]*=[ \t]*({QUOTED_STRING_PATTERN}|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+"
    rf"|[{TOKEN_CHARS}]+))?"
    r"[ \t]*"
)

#   via-parm          =  sent-protocol LWS sent-by *( SEMI via-params )
#   sent-protocol     =  protocol-name SLASH protocol-version
#                        SLASH transport
#   protocol-name     =  "SIP" / token
#   protocol-version  =  token
#   transport         =  "UDP" / "TCP" / "TLS" / "SCTP"
#                        / other-transport
#   sent-by           =  host [ COLON port ]
#   SLASH   =  SWS "/" SWS ; slash
#   COLON   =  SWS ":" SWS ; colon
#
# Groups: protocol-name, protocol-version, transport, host, port, the rest
# (which must be empty or a run of generic parameters).
VIA_PARM = re.compile(
    rf"([{TOKEN_CHARS}]+)[ \t]*/[ \t]*([{TOKEN_CHARS}]+)[ \t]*/[ \t]*([{TOKEN_CHARS}]+)"
    r"[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
    r"(.*)\Z",
    re.DOTALL,
)

#   CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method
# The value range (< 2**32, RFC 4475 3.1.2.4) is checked by the header
# module, on the digit count first so hostile lengths never reach int().
CSEQ = re.compile(rf"([0-9]+)[ \t]+([{TOKEN_CHARS}]+)\Z")

#   Call-ID  =  ( "Call-ID" / "i" ) HCOLON callid
#   callid   =  word [ "@" word ]
#   word        =  1*(alphanum / "-" / "." / "!" / "%" / "*" /
#                  "_" / "+" / "`" / "'" / "~" /
#                  "(" / ")" / "<" / ">" /
#                  ":" / "\" / DQUOTE /
#                  "/" / "[" / "]" / "?" /
#                  "{" / "}" )
WORD_CHARS = ALPHANUM + r"\-.!%*_+`'~()<>:\\\"/\[\]?{}"
CALL_ID = re.compile(rf"[{WORD_CHARS}]+(?:@[{WORD_CHARS}]+)?\Z")

#   SIP-date      =  rfc1123-date
#   rfc1123-date  =  wkday "," SP date1 SP time SP "GMT"
#   date1         =  2DIGIT SP month SP 4DIGIT
#   time          =  2DIGIT ":" 2DIGIT ":" 2DIGIT
#   wkday  =  "Mon" / "Tue" / "Wed"
#             / "Thu" / "Fri" / "Sat" / "Sun"
#   month  =  "Jan" / "Feb" / "Mar" / "Apr"
#             / "May" / "Jun" / "Jul" / "Aug"
#             / "Sep" / "Oct" / "Nov" / "Dec"
# "GMT" is the only zone RFC 3261 allows (RFC 4475 3.1.2.12).
SIP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT\Z"
)

#   display-name   =  *(token LWS)/ quoted-string
# The unquoted form: tokens separated by whitespace.
DISPLAY_NAME_TOKENS = re.compile(rf"[{TOKEN_CHARS}]+(?:[ \t]+[{TOKEN_CHARS}]+)*\Z")

#   option-tag     =  token
OPTION_TAG = TOKEN

# ASCII digits only (str.isdigit would accept other scripts).
DIGITS = re.compile(r"[0-9]+\Z")

# Characters that must never appear in a header value we emit.
CONTROL_CHARS = re.compile(r"[\r\n]")
