use gmmseg::data::{open_dataset, DatasetOptions};
use gmmseg::train::config::{HeadKind, TrainConfig};
use gmmseg::train::trainer::{print_every, Trainer};
fn main() -> gmmseg::Result<()> {
    let head = match std::env::args().nth(1).as_deref() { Some("softmax") => HeadKind::Softmax, Some("ref") => HeadKind::GmmsegRef, _ => HeadKind::Gmmseg };
    let opts = DatasetOptions::default();
    let train = open_dataset("synthscapes", "train", &opts)?;
    let val = open_dataset("synthscapes", "val", &opts)?;
    let mut cfg = TrainConfig::quick();
    cfg.head = head;
    cfg.eval_every = 100;
    if let Ok(m) = std::env::var("M") { cfg.gmm.components = m.parse().unwrap(); }
    if let Ok(m) = std::env::var("STEPS") { cfg.steps = m.parse().unwrap(); }
    let mut t = Trainer::new(cfg.check()?, train.num_classes())?;
    t.fit(train.as_ref(), Some(val.as_ref()), &mut print_every(25))?;
    Ok(())
}
