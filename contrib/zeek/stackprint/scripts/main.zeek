##! stackprint sensor-side package.
##!
##! 1. Adds stackprint's Zeek Intel file (outputs.zeek_intel) to
##!    Intel::read_files. stackprint replaces it atomically (new inode), so
##!    Zeek re-reads it; with frameworks/intel/seen a connection to or from a
##!    listed server is an intel hit, and with frameworks/intel/do_notice an
##!    item with meta.do_notice=T (outputs.zeek_intel_do_notice: true) also
##!    raises Intel::Notice.
##! 2. Optionally follows stackprint_alert.log (outputs.alert_log, Zeek TSV
##!    format) with the Input framework and raises one
##!    Stackprint::Malicious_TLS_Server notice per alert, with the rule and the
##!    fingerprint that matched, deduplicated on stackprint's alert_id.
##!
##! The paths below are the ones docs in the stackprint README use; change
##! them with redef before loading, e.g. in local.zeek:
##!   redef Stackprint::intel_file = "/srv/stackprint/stackprint.intel";
##!   @load /usr/share/stackprint/contrib/zeek/stackprint/scripts

@load base/frameworks/intel
@load base/frameworks/input
@load base/frameworks/notice
@load frameworks/intel/seen
@load frameworks/intel/do_notice

module Stackprint;

export {
	## stackprint's Zeek Intel file; "" loads none.
	const intel_file = "/var/log/stackprint/stackprint.intel" &redef;

	## stackprint's alert log in Zeek TSV format; "" reads none.
	const alert_log = "/var/log/stackprint/stackprint_alert.log" &redef;

	## How long Zeek suppresses a repeated notice for one alert_id.
	const alert_suppress_for = 1hr &redef;

	redef enum Notice::Type += {
		## stackprint fingerprinted a TLS server a client talked to and one of
		## its rules flagged it (msg: stackprint's message; sub: rule, match
		## kind, matched value and label).
		Malicious_TLS_Server,
	};

	## The client and server of an alert (the columns id.orig_h, id.orig_p,
	## id.resp_h and id.resp_p of stackprint_alert.log). A retro-hunt alert
	## (a DB entry added later matched a server probed before) has no client.
	type AlertConn: record {
		orig_h: addr &optional;
		orig_p: port &optional;
		resp_h: addr;
		resp_p: port;
	};

	## The columns of stackprint_alert.log this package uses; the reader
	## matches columns by name, so the others are ignored.
	type AlertLine: record {
		ts: time;
		alert_id: string;
		uid: string &optional;
		id: AlertConn;
		server_name: string &optional;
		rule: string;
		severity: string;
		msg: string;
		simulated: bool;
		match_kind: string &optional;
		match_value: string &optional;
		match_label: string &optional;
	};

	## Raised for every line of the alert log.
	global alert_line: event(desc: Input::EventDescription, tpe: Input::Event, a: AlertLine);
}

redef Intel::read_files += { intel_file };

event Stackprint::alert_line(desc: Input::EventDescription, tpe: Input::Event, a: AlertLine)
	{
	# Simulated alerts (rules tried out on a live sensor) are not notices.
	if ( a$simulated )
		return;

	local sub = fmt("rule=%s severity=%s", a$rule, a$severity);
	if ( a?$match_kind && a?$match_value )
		sub = fmt("%s match=%s:%s", sub, a$match_kind, a$match_value);
	if ( a?$match_label )
		sub = fmt("%s label=%s", sub, a$match_label);

	local n: Notice::Info = [$note=Malicious_TLS_Server,
	                         $msg=a$msg,
	                         $sub=sub,
	                         $dst=a$id$resp_h,
	                         $p=a$id$resp_p,
	                         $identifier=a$alert_id,
	                         $suppress_for=alert_suppress_for];
	if ( a?$uid )
		n$uid = a$uid;
	if ( a$id?$orig_h )
		n$src = a$id$orig_h;
	NOTICE(n);
	}

event zeek_init()
	{
	if ( alert_log == "" )
		return;
	Input::add_event([$source=alert_log,
	                  $name="stackprint_alert_log",
	                  $reader=Input::READER_ASCII,
	                  $mode=Input::STREAM,
	                  $fields=AlertLine,
	                  $want_record=T,
	                  $ev=Stackprint::alert_line]);
	}
