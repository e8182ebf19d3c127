// Keeps faceadapt_ingest a real library while its sources land.
namespace faceadapt::ingest {}
