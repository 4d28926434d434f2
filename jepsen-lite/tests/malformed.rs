//! Malformed input never panics and is reported with its line: truncated JSON, a completion
//! with no invocation, an unknown f, a value of the wrong type; and random bytes fed to every
//! reader (and, when they parse, to the checker).

use jepsen_lite::formats::{self, Format};
use jepsen_lite::{CheckOptions, ModelKind, RegisterModel, check, txn};
use proptest::prelude::*;

fn check_error(text: &str, model: ModelKind) -> (usize, String) {
    let history = match formats::read(text, Format::Jsonl) {
        Ok(history) => history,
        Err(e) => return (e.line, e.message),
    };
    let err = check(&RegisterModel::new(model), &history, &CheckOptions::default()).unwrap_err();
    (err.line, err.message)
}

const INVOKE: &str = "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n";

#[test]
fn truncated_json_line() {
    let text = format!("{INVOKE}{{\"process\":1,\"type\":\"ok\",\"f\":\"wri");
    let (line, message) = check_error(&text, ModelKind::Register);
    assert_eq!(line, 2);
    assert!(message.contains("invalid JSON"), "{message}");
}

#[test]
fn ok_with_no_invoke() {
    let text = format!("{INVOKE}{{\"process\":2,\"type\":\"ok\",\"f\":\"write\",\"value\":1}}\n");
    let (line, message) = check_error(&text, ModelKind::Register);
    assert_eq!(line, 2);
    assert!(message.contains("no open invocation"), "{message}");
}

#[test]
fn unknown_f() {
    let text = "{\"process\":1,\"type\":\"invoke\",\"f\":\"frobnicate\",\"value\":1}\n";
    let (line, message) = check_error(text, ModelKind::CasRegister);
    assert_eq!(line, 1);
    assert!(message.contains("unknown f :frobnicate"), "{message}");
}

#[test]
fn value_of_the_wrong_type() {
    let text =
        format!("{INVOKE}{{\"process\":3,\"type\":\"invoke\",\"f\":\"cas\",\"value\":\"oops\"}}\n");
    let (line, message) = check_error(&text, ModelKind::CasRegister);
    assert_eq!(line, 2);
    assert!(message.contains("cas takes [from to]"), "{message}");
    let text = "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":{\"a\":1}}\n";
    assert!(check_error(text, ModelKind::Register).1.contains("object"));
}

const FORMATS: [Format; 4] = [Format::Jsonl, Format::Edn, Format::JepsenLog, Format::PorcupineKv];
const MODELS: [ModelKind; 4] =
    [ModelKind::Register, ModelKind::CasRegister, ModelKind::Kv, ModelKind::KvEmptyDefault];

fn feed(text: &str) {
    let _ = formats::detect(text);
    for history in [txn::read_edn(text), txn::read_jsonl(text)].into_iter().flatten() {
        let _ = txn::check(&history, &txn::Model::ALL, txn::SearchBudget(100_000));
    }
    for format in FORMATS {
        if let Ok(history) = formats::read(text, format) {
            for model in MODELS {
                let options = CheckOptions {
                    timeout: Some(std::time::Duration::from_millis(200)),
                    ..CheckOptions::default()
                };
                let _ = check(&RegisterModel::new(model), &history, &options);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        feed(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mangled_histories_never_panic(cut in 0usize..600, flip in 0usize..600, byte in any::<u8>()) {
        let valid = concat!(
            "{:process 0, :type :invoke, :f :cas, :value [1 2]}\n",
            "{:process 0, :type :ok, :f :cas, :value [1 2]}\n",
            "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n",
            "{\"process\":2,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":\"v\"}\n",
            "{\"process\":2,\"type\":\"ok\",\"f\":\"put\",\"key\":\"k\",\"value\":\"v\"}\n",
            "[{:process 3, :type :invoke, :f :get, :key \"k\", :value nil}]\n",
        );
        mangle(valid, cut, flip, byte);
    }

    #[test]
    fn mangled_list_append_histories_never_panic(
        cut in 0usize..700, flip in 0usize..700, byte in any::<u8>()
    ) {
        let valid = concat!(
            "{:process 0 :type :invoke :f :txn :value [[:append :x 1] [:r :y nil]]}\n",
            "{:process 1 :type :ok :value [[:append :x 2] [:append :y 1]]}\n",
            "{:process 0 :type :ok :f :txn :value [[:append :x 1] [:r :y [1]]]}\n",
            "{:type :ok :value [[:r :x [1 2 2]] [:r 3 nil]]}\n",
            "{\"process\":4,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"r\",\"x\",[2,1]]]}\n",
        );
        mangle(valid, cut, flip, byte);
    }
}

/// Feeds `valid` cut at `cut` with the byte at `flip` replaced by `byte`.
fn mangle(valid: &str, cut: usize, flip: usize, byte: u8) {
    let mut bytes = valid.as_bytes()[..cut.min(valid.len())].to_vec();
    if !bytes.is_empty() {
        let at = flip % bytes.len();
        bytes[at] = byte;
    }
    feed(&String::from_utf8_lossy(&bytes));
}
