use sozu_command::proto::command::*;
#[test]
fn quick() {
    let data = std::fs::read("../../shared/fixtures/sozu-2.3/state.txt").unwrap();
    for rec in data.split(|b| *b == 0) {
        let rec = std::str::from_utf8(rec).unwrap().trim_end_matches('\n');
        if rec.is_empty() { continue; }
        let wr: WorkerRequest = serde_json::from_str(rec).unwrap();
        let back = serde_json::to_string(&wr).unwrap();
        assert_eq!(back, rec);
    }
    let data = std::fs::read("../../shared/fixtures/sozu-2.1/state.txt").unwrap();
    for rec in data.split(|b| *b == 0) {
        let rec = std::str::from_utf8(rec).unwrap().trim_end_matches('\n');
        if rec.is_empty() { continue; }
        let _wr: WorkerRequest = serde_json::from_str(rec).unwrap();
    }
    for f in ["status","listener-list","frontend-list","cluster-list","cluster-list-web","certificate-list","metrics-get","metrics-get-web"] {
        let text = std::fs::read_to_string(format!("../../shared/fixtures/sozu-2.3/{f}.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let c: response_content::ContentType = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(serde_json::to_value(&c).unwrap(), v, "{f}");
    }
}
