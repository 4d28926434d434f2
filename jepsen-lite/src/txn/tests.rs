use super::*;

fn edn(text: &str) -> TxnHistory {
    read_edn(text).unwrap()
}

fn types(report: &TxnReport) -> Vec<String> {
    report.anomaly_types().into_iter().collect()
}

#[test]
fn the_readme_three_transaction_example_is_g1c() {
    let history = edn("{:process 0 :type :ok :value [[:append :x 1] [:r :y [1]]]}
         {:process 1 :type :ok :value [[:append :x 2] [:append :y 1]]}
         {:process 2 :type :ok :value [[:r :x [1 2]]]}");
    let report = check(&history, &Model::ALL, SearchBudget::default());
    assert_eq!(types(&report), ["G1c"], "{report:?}");
    assert_eq!(report.violated.first(), Some(&Model::ReadCommitted));
    let Anomaly::Cycle { steps, .. } = &report.anomalies[0] else { panic!() };
    let shown: Vec<String> = steps.iter().map(Step::to_string).collect();
    assert_eq!(shown, ["T1 wr→ T0 on :y", "T0 ww→ T1 on :x"], "{shown:?}");
}

#[test]
fn a_serial_history_is_valid() {
    let history = edn("{:process 0 :type :invoke :value [[:append 1 1] [:r 1 nil]]}
         {:process 0 :type :ok :value [[:append 1 1] [:r 1 [1]]]}
         {:process 1 :type :invoke :value [[:r 1 nil] [:append 1 2]]}
         {:process 1 :type :ok :value [[:r 1 [1]] [:append 1 2]]}
         {:process 0 :type :invoke :value [[:r 1 nil]]}
         {:process 0 :type :ok :value [[:r 1 [1 2]]]}");
    let report = check(&history, &Model::ALL, SearchBudget::default());
    assert!(report.valid(), "{report:?}");
    assert!(report.edges >= 3, "{report:?}");
}

#[test]
fn json_lines_carry_micro_ops_in_txn_or_value() {
    let schema = r#"{"process":2,"type":"invoke","f":"txn","value":null,"txn":[["append","x",1],["r","y",null]]}
{"process":2,"type":"ok","f":"txn","value":null,"txn":[["append","x",1],["r","y",[]]]}
{"process":3,"type":"ok","f":"txn","value":[["r","x",[1]]]}
{"process":"nemesis","type":"info","f":"kill","value":null}"#;
    let history = read_jsonl(schema).unwrap();
    assert_eq!(history.txns.len(), 2);
    assert_eq!(history.txns[0].mops[1], Mop::Read { key: "y".into(), value: Some(vec![]) });
    assert_eq!(history.txns[1].mops, [Mop::Read { key: "x".into(), value: Some(vec![1]) }]);
    assert!(check(&history, &Model::ALL, SearchBudget::default()).valid());
    let error =
        read_jsonl(r#"{"process":1,"type":"ok","f":"txn","txn":[["w","x",1]]}"#).unwrap_err();
    assert!(error.to_string().contains("unknown micro-op"), "{error}");
}

#[test]
fn an_aborted_append_seen_is_g1a_and_an_info_append_may_be_seen() {
    let history = edn("{:process 0 :type :invoke :value [[:append 1 1]]}
         {:process 1 :type :invoke :value [[:append 2 1]]}
         {:process 0 :type :fail :value [[:append 1 1]]}
         {:process 1 :type :info :value [[:append 2 1]]}
         {:process 2 :type :invoke :value [[:r 1 nil] [:r 2 nil]]}
         {:process 2 :type :ok :value [[:r 1 [1]] [:r 2 [1]]]}");
    let report = check(&history, &Model::ALL, SearchBudget::default());
    assert_eq!(types(&report), ["G1a"], "{report:?}");
    assert_eq!(report.violated.first(), Some(&Model::ReadCommitted));
}
