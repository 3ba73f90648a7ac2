package kinesisapi

// Request and response shapes of the Kinesis Data Streams API
// (Kinesis_20131202). Optional request members are pointers so that an
// absent member and a zero one can be told apart; response members that AWS
// leaves out when empty carry omitempty.

type streamRef struct {
	StreamName *string `json:"StreamName,omitempty"`
	StreamARN  *string `json:"StreamARN,omitempty"`
}

type streamModeDetails struct {
	StreamMode string `json:"StreamMode"`
}

type createStreamInput struct {
	streamRef
	ShardCount        *int               `json:"ShardCount,omitempty"`
	StreamModeDetails *streamModeDetails `json:"StreamModeDetails,omitempty"`
	Tags              map[string]string  `json:"Tags,omitempty"`
}

type deleteStreamInput struct {
	streamRef
	EnforceConsumerDeletion *bool `json:"EnforceConsumerDeletion,omitempty"`
}

type describeStreamInput struct {
	streamRef
	Limit                 *int    `json:"Limit,omitempty"`
	ExclusiveStartShardId *string `json:"ExclusiveStartShardId,omitempty"`
}

type hashKeyRange struct {
	StartingHashKey string `json:"StartingHashKey"`
	EndingHashKey   string `json:"EndingHashKey"`
}

type sequenceNumberRange struct {
	StartingSequenceNumber string `json:"StartingSequenceNumber"`
	EndingSequenceNumber   string `json:"EndingSequenceNumber,omitempty"`
}

type shardOut struct {
	ShardId               string              `json:"ShardId"`
	ParentShardId         string              `json:"ParentShardId,omitempty"`
	AdjacentParentShardId string              `json:"AdjacentParentShardId,omitempty"`
	HashKeyRange          hashKeyRange        `json:"HashKeyRange"`
	SequenceNumberRange   sequenceNumberRange `json:"SequenceNumberRange"`
}

type enhancedMetrics struct {
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
}

type streamDescription struct {
	StreamName              string            `json:"StreamName"`
	StreamARN               string            `json:"StreamARN"`
	StreamStatus            string            `json:"StreamStatus"`
	StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
	Shards                  []shardOut        `json:"Shards"`
	HasMoreShards           bool              `json:"HasMoreShards"`
	RetentionPeriodHours    int               `json:"RetentionPeriodHours"`
	StreamCreationTimestamp Timestamp         `json:"StreamCreationTimestamp"`
	EnhancedMonitoring      []enhancedMetrics `json:"EnhancedMonitoring"`
	EncryptionType          string            `json:"EncryptionType"`
}

type describeStreamOutput struct {
	StreamDescription streamDescription `json:"StreamDescription"`
}

type streamDescriptionSummary struct {
	StreamName              string            `json:"StreamName"`
	StreamARN               string            `json:"StreamARN"`
	StreamStatus            string            `json:"StreamStatus"`
	StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
	RetentionPeriodHours    int               `json:"RetentionPeriodHours"`
	StreamCreationTimestamp Timestamp         `json:"StreamCreationTimestamp"`
	EnhancedMonitoring      []enhancedMetrics `json:"EnhancedMonitoring"`
	EncryptionType          string            `json:"EncryptionType"`
	OpenShardCount          int               `json:"OpenShardCount"`
	ConsumerCount           int               `json:"ConsumerCount"`
}

type describeStreamSummaryOutput struct {
	StreamDescriptionSummary streamDescriptionSummary `json:"StreamDescriptionSummary"`
}

type listStreamsInput struct {
	Limit                    *int    `json:"Limit,omitempty"`
	ExclusiveStartStreamName *string `json:"ExclusiveStartStreamName,omitempty"`
	NextToken                *string `json:"NextToken,omitempty"`
}

type streamSummary struct {
	StreamName              string            `json:"StreamName"`
	StreamARN               string            `json:"StreamARN"`
	StreamStatus            string            `json:"StreamStatus"`
	StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
	StreamCreationTimestamp Timestamp         `json:"StreamCreationTimestamp"`
}

type listStreamsOutput struct {
	StreamNames     []string        `json:"StreamNames"`
	HasMoreStreams  bool            `json:"HasMoreStreams"`
	NextToken       string          `json:"NextToken,omitempty"`
	StreamSummaries []streamSummary `json:"StreamSummaries"`
}

type shardFilter struct {
	Type      *string    `json:"Type,omitempty"`
	ShardId   *string    `json:"ShardId,omitempty"`
	Timestamp *Timestamp `json:"Timestamp,omitempty"`
}

type listShardsInput struct {
	streamRef
	NextToken               *string      `json:"NextToken,omitempty"`
	ExclusiveStartShardId   *string      `json:"ExclusiveStartShardId,omitempty"`
	MaxResults              *int         `json:"MaxResults,omitempty"`
	StreamCreationTimestamp *Timestamp   `json:"StreamCreationTimestamp,omitempty"`
	ShardFilter             *shardFilter `json:"ShardFilter,omitempty"`
}

type listShardsOutput struct {
	Shards    []shardOut `json:"Shards"`
	NextToken string     `json:"NextToken,omitempty"`
}

type putRecordInput struct {
	streamRef
	PartitionKey              *string `json:"PartitionKey,omitempty"`
	Data                      []byte  `json:"Data,omitempty"`
	ExplicitHashKey           *string `json:"ExplicitHashKey,omitempty"`
	SequenceNumberForOrdering *string `json:"SequenceNumberForOrdering,omitempty"`
}

type putRecordOutput struct {
	ShardId        string `json:"ShardId"`
	SequenceNumber string `json:"SequenceNumber"`
	EncryptionType string `json:"EncryptionType,omitempty"`
}

type putRecordsEntry struct {
	PartitionKey    *string `json:"PartitionKey,omitempty"`
	Data            []byte  `json:"Data,omitempty"`
	ExplicitHashKey *string `json:"ExplicitHashKey,omitempty"`
}

type putRecordsInput struct {
	streamRef
	Records []putRecordsEntry `json:"Records"`
}

type putRecordsResultEntry struct {
	ShardId        string `json:"ShardId,omitempty"`
	SequenceNumber string `json:"SequenceNumber,omitempty"`
	ErrorCode      string `json:"ErrorCode,omitempty"`
	ErrorMessage   string `json:"ErrorMessage,omitempty"`
}

type putRecordsOutput struct {
	FailedRecordCount int                     `json:"FailedRecordCount"`
	Records           []putRecordsResultEntry `json:"Records"`
	EncryptionType    string                  `json:"EncryptionType,omitempty"`
}

type getShardIteratorInput struct {
	streamRef
	ShardId                *string    `json:"ShardId,omitempty"`
	ShardIteratorType      *string    `json:"ShardIteratorType,omitempty"`
	StartingSequenceNumber *string    `json:"StartingSequenceNumber,omitempty"`
	Timestamp              *Timestamp `json:"Timestamp,omitempty"`
}

type getShardIteratorOutput struct {
	ShardIterator string `json:"ShardIterator"`
}

type getRecordsInput struct {
	ShardIterator *string `json:"ShardIterator,omitempty"`
	Limit         *int    `json:"Limit,omitempty"`
	StreamARN     *string `json:"StreamARN,omitempty"`
}

type recordOut struct {
	SequenceNumber              string    `json:"SequenceNumber"`
	ApproximateArrivalTimestamp Timestamp `json:"ApproximateArrivalTimestamp"`
	Data                        []byte    `json:"Data"`
	PartitionKey                string    `json:"PartitionKey"`
}

type childShardOut struct {
	ShardId      string       `json:"ShardId"`
	ParentShards []string     `json:"ParentShards"`
	HashKeyRange hashKeyRange `json:"HashKeyRange"`
}

type getRecordsOutput struct {
	Records            []recordOut     `json:"Records"`
	NextShardIterator  string          `json:"NextShardIterator,omitempty"`
	MillisBehindLatest int64           `json:"MillisBehindLatest"`
	ChildShards        []childShardOut `json:"ChildShards,omitempty"`
}

type splitShardInput struct {
	streamRef
	ShardToSplit       *string `json:"ShardToSplit,omitempty"`
	NewStartingHashKey *string `json:"NewStartingHashKey,omitempty"`
}

type mergeShardsInput struct {
	streamRef
	ShardToMerge         *string `json:"ShardToMerge,omitempty"`
	AdjacentShardToMerge *string `json:"AdjacentShardToMerge,omitempty"`
}

type updateShardCountInput struct {
	streamRef
	TargetShardCount *int    `json:"TargetShardCount,omitempty"`
	ScalingType      *string `json:"ScalingType,omitempty"`
}

type updateShardCountOutput struct {
	StreamName        string `json:"StreamName"`
	StreamARN         string `json:"StreamARN"`
	CurrentShardCount int    `json:"CurrentShardCount"`
	TargetShardCount  int    `json:"TargetShardCount"`
}

type retentionInput struct {
	streamRef
	RetentionPeriodHours *int `json:"RetentionPeriodHours,omitempty"`
}

type addTagsInput struct {
	streamRef
	Tags map[string]string `json:"Tags,omitempty"`
}

type removeTagsInput struct {
	streamRef
	TagKeys []string `json:"TagKeys,omitempty"`
}

type listTagsInput struct {
	streamRef
	ExclusiveStartTagKey *string `json:"ExclusiveStartTagKey,omitempty"`
	Limit                *int    `json:"Limit,omitempty"`
}

type tagOut struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type listTagsOutput struct {
	Tags        []tagOut `json:"Tags"`
	HasMoreTags bool     `json:"HasMoreTags"`
}
